//! Integration tests: the real binary against real files.
//!
//! Tests that read `../shared/` or need `rsyslogd` or `redis-server` are
//! `#[ignore]`d (a plain clone has no `../shared`); `scripts/test` (the
//! README's test command, also run by `.ci/run`) installs rsyslog and Redis
//! and runs them with `-- --ignored`.

mod batch;
mod cli;
mod conformance;
mod daemon;
mod exactness;
mod farm;
mod layers;
mod observe;
mod rules;
mod syslog;
mod trust;
mod util;
