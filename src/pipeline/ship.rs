//! The farm thread: takes the alert thread's batches of events to the
//! farm's Redis, one round trip per run of chunks of one file, and answers
//! with the farm's decisions and how the link stands. On a thread of its
//! own, so the alert thread goes on taking chunks in (and giving their
//! buffers back to the reader) while a round trip is out.

use crate::farm::link::{FarmDecisions, Hit, Link, LinkCounts};
use crossbeam_channel::{Receiver, Sender};

/// Consecutive chunks of one file in a batch: their events, in line order.
pub(super) struct Run {
    /// The file's name for the farm's record of what each node applied;
    /// `None` for a file without an identity (a stream), decided alone.
    pub file: Option<String>,
    /// The events.
    pub hits: Vec<Hit>,
}

/// The farm's answer to a batch.
pub(super) struct Answer {
    /// Per run: the farm's decisions, or `None` while Redis does not answer.
    pub decided: Vec<Option<FarmDecisions>>,
    /// The link's counters after the batch.
    pub link: LinkCounts,
    /// How this node differs from the others, in words.
    pub differences: Vec<String>,
    /// While this node decides alone: Redis's last error, in words.
    pub why_alone: Option<String>,
}

/// The alert thread's end of the farm thread.
pub(super) struct Port {
    /// Batches to decide.
    pub batches: Sender<Vec<Run>>,
    /// Their answers, in the same order.
    pub answers: Receiver<Answer>,
    /// This node's name, for its alerts.
    pub node: String,
}

/// Decides each batch's runs on the farm until the alert thread hangs up.
pub(super) fn ship(link: &mut Link, batches: &Receiver<Vec<Run>>, answers: &Sender<Answer>) {
    for runs in batches {
        let decided = runs
            .iter()
            .map(|r| r.file.as_deref().and_then(|f| link.decide(f, &r.hits).ok()))
            .collect();
        let answer = Answer {
            decided,
            link: link.counts(),
            differences: link.findings().iter().map(|f| f.text.clone()).collect(),
            why_alone: link.why_alone().map(str::to_string),
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}
