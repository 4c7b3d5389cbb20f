//! UIG connector plugin for KIAS core insurance system (SOAP ExecProc).
//!
//! Skeleton: the implementation is in progress.
