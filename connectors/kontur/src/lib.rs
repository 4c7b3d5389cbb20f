//! UIG connector plugin for Kontur.Strakhovanie (Kontur Medi document mailbox, API v2).
//!
//! Skeleton: the implementation is in progress.
