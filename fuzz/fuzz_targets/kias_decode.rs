//! Fuzz target: KIAS response decoding, XML parsing and SOAP reply reading.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uig_fuzz::kias_decode::check(data));
