//! logwarden: exact per-client sliding-window alerts over Apache and nginx logs.
//!
//! The data flows through one module per stage: [`source`] (files →
//! line-aligned chunks; [`follow`] for live files) → [`parse`] (line →
//! client, time, request) → [`rules`] (which lines are events) → [`window`]
//! (exact per-key counting) → [`alert`] (what is reported) → [`output`]
//! (syslog, jsonl, exec, webhook). [`pipeline`] wires the engine's stages to
//! threads; [`state`] saves what survives a restart; [`farm`] reaches the
//! Redis a web farm's nodes count together through; [`config`] builds all
//! of them from the TOML file; [`app`] implements the commands, the live
//! daemon among them.
//!
//! Dependencies point one way. From the bottom, each module imports only
//! modules listed before it (a test, `tests/layers.rs`, checks this):
//! `testing` (helpers for unit tests), [`units`], [`threads`], [`template`], [`parse`],
//! [`rules`], [`window`], [`alert`], [`source`], [`follow`], [`state`], [`farm`],
//! [`pipeline`], [`output`], [`observe`], [`config`], [`app`]. `parse`, `rules` and
//! `window` do no I/O and read no clock.

// Module docs name their private parts, for a reader of the source and of
// `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

pub mod alert;
pub mod app;
pub mod config;
pub mod farm;
pub mod follow;
pub mod observe;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod rules;
pub mod source;
pub mod state;
pub mod template;
#[cfg(test)]
pub(crate) mod testing;
pub mod threads;
pub mod units;
pub mod window;
