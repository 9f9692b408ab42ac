//! loadgen's line generator and its independent model of the alerts, as a
//! library: the `loadgen` binary uses them, and so does `logwarden demo`
//! (its traffic is the load generator's).

pub mod generate;
pub mod model;
