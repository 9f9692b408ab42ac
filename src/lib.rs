//! logwarden: exact per-client sliding-window alerts over Apache and nginx logs.
//!
//! The data flows through one module per stage: [`source`] (files →
//! line-aligned chunks; [`follow`] for live files) → [`parse`] (line →
//! client, time, request) → [`rules`] (which lines are events) → [`window`]
//! (exact per-key counting) → [`alert`] (what is reported) → [`output`]
//! (syslog, jsonl, exec, webhook). [`pipeline`] wires the engine's stages to
//! threads; [`state`] saves what survives a restart; [`config`] sits at the
//! side; [`app`] implements the commands and [`daemon`] the live one.

pub mod alert;
pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod follow;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod rules;
pub mod source;
pub mod state;
pub mod window;
