//! Several sources followed at once: one thread per source (each a
//! [`super::Follower`]), their events handed on as they come, each
//! source's in its own order.
//!
//! One reader per source rather than one for all: a follower's state (its
//! files, the dated series' day, rotations) is per path, so one follower
//! per source reuses it unchanged, and a source that waits for its files
//! never holds up another's lines.

use crate::source::{Source, SourceError, SourceEvent};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Events in flight from the readers to the pipeline's reader thread.
const IN_FLIGHT: usize = 4;

/// Several sources read at once.
pub struct Several {
    /// The sources, each run on its own thread.
    pub sources: Vec<Box<dyn Source>>,
    /// Wake-ups for the daemon (a signal, a status page's probe), passed
    /// on to every source.
    pub wake: Receiver<()>,
    /// Each source's own wake-up.
    pub wakes: Vec<Sender<()>>,
    /// The sources' stop flag: set when one fails, so the others end too.
    pub stop: Arc<AtomicBool>,
}

impl Source for Several {
    fn run(self: Box<Self>, emit: &mut dyn FnMut(SourceEvent) -> bool) -> Result<(), SourceError> {
        let (tx, rx) = bounded::<Result<SourceEvent, SourceError>>(IN_FLIGHT);
        // Dropped when reading ends, which ends the passing on of wake-ups.
        let (done_tx, done) = bounded::<()>(0);
        let Several { sources, wake, wakes, stop } = *self;
        std::thread::scope(|s| {
            for source in sources {
                let tx = tx.clone();
                s.spawn(move || {
                    if let Err(e) = source.run(&mut |ev| tx.send(Ok(ev)).is_ok()) {
                        tx.send(Err(e)).unwrap_or(());
                    }
                });
            }
            drop(tx);
            s.spawn(|| pass_on_wakes(&wake, &wakes, &done));
            let _done = done_tx;
            let mut failure = None;
            for msg in &rx {
                let go_on = match msg {
                    Ok(ev) => emit(ev),
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                };
                if !go_on {
                    // End the others; what they still send is dropped.
                    stop.store(true, Ordering::SeqCst);
                    wakes.iter().for_each(|w| w.try_send(()).unwrap_or(()));
                    rx.iter().for_each(drop);
                    break;
                }
            }
            failure.map_or(Ok(()), Err)
        })
    }
}

/// Passes each wake-up on to every source until `done` is closed.
fn pass_on_wakes(wake: &Receiver<()>, wakes: &[Sender<()>], done: &Receiver<()>) {
    loop {
        crossbeam_channel::select! {
            recv(wake) -> got => match got {
                // A full channel already holds a wake-up.
                Ok(()) => wakes.iter().for_each(|w| w.try_send(()).unwrap_or(())),
                Err(_) => return,
            },
            recv(done) -> _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A source that sends `n` probes, or fails after them.
    struct Fake {
        n: usize,
        fail: bool,
        stop: Arc<AtomicBool>,
    }

    impl Source for Fake {
        fn run(
            self: Box<Self>,
            emit: &mut dyn FnMut(SourceEvent) -> bool,
        ) -> Result<(), SourceError> {
            for _ in 0..self.n {
                if !emit(SourceEvent::Probe) {
                    return Ok(());
                }
            }
            if self.fail {
                let error = std::io::Error::other("gone");
                return Err(SourceError { name: "f".into(), error });
            }
            // Like a follower: idle until told to stop.
            while !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
    }

    fn several(fakes: &[(usize, bool)], stop: &Arc<AtomicBool>) -> Box<Several> {
        let (_wake_tx, wake) = bounded(1);
        let sources = fakes
            .iter()
            .map(|&(n, fail)| Box::new(Fake { n, fail, stop: Arc::clone(stop) }) as Box<dyn Source>)
            .collect();
        Box::new(Several { sources, wake, wakes: Vec::new(), stop: Arc::clone(stop) })
    }

    #[test]
    fn every_event_of_every_source_is_handed_on_until_they_stop() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut seen = 0;
        let s = several(&[(3, false), (5, false)], &stop);
        let stopper = Arc::clone(&stop);
        let r = s.run(&mut |_| {
            seen += 1;
            if seen == 8 {
                stopper.store(true, Ordering::SeqCst);
            }
            true
        });
        assert!(r.is_ok());
        assert_eq!(seen, 8);
    }

    #[test]
    fn one_source_failing_ends_them_all_with_its_error() {
        let stop = Arc::new(AtomicBool::new(false));
        let r = several(&[(2, true), (1, false)], &stop).run(&mut |_| true);
        assert_eq!(r.unwrap_err().to_string(), "reading f: gone");
        assert!(stop.load(Ordering::SeqCst), "the others were told to stop");
    }
}
