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
