//! Fuzz target: request parameter decoding (query, form and JSON bodies) and the canonical string to sign.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uig_fuzz::params::check(data));
