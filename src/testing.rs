//! Helpers for the unit tests of every module (built only for them).

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// What the tracing macros write, kept for a test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `f` logs (every level from info up), as text.
pub fn logged(f: impl FnOnce()) -> String {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(log.0.lock().unwrap().clone()).unwrap()
}
