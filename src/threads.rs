//! Starting the engine's threads under names that `top -H`, `perf` and a
//! panic's message show. At the bottom: no other module of the crate is
//! imported here.

use std::thread::Scope;

/// Starts a scoped thread named `name`. A failure to start one (out of
/// threads or memory) ends the process: the stage cannot run without it.
pub fn spawn<'s>(s: &'s Scope<'s, '_>, name: &str, f: impl FnOnce() + Send + 's) {
    if let Err(e) = std::thread::Builder::new().name(name.to_string()).spawn_scoped(s, f) {
        panic!("cannot start the {name} thread: {e}");
    }
}
