//! Fuzz target: request timestamp parsing in its three formats and the replay window check.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uig_fuzz::timestamp::check(data));
