//! Harnesses of the UIG fuzz targets. Each module's `check` runs one input through product code
//! and panics when a contract breaks. The regression tests in `engine/tests` and
//! `connectors/kias/tests` include these files by path and replay the inputs in `regressions/`.

mod input;
pub mod kias_decode;
pub mod params;
pub mod timestamp;
