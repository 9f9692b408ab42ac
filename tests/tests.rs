//! Integration tests: the real binary against real files.
//!
//! Tests that read `../shared/` are `#[ignore]`d (a plain clone has no
//! `../shared`); `.ci/run` runs them explicitly with `-- --ignored`.

mod cli;
mod conformance;
mod daemon;
mod exactness;
mod syslog;
mod util;
