//! UIG connector plugin for IMPACT (JSON REST with HTTP Basic auth).
//!
//! Skeleton: the implementation is in progress.
