//! `logwarden replay`: files through the engine, alerts to standard output,
//! a progress bar and the summary to standard error.

use super::{load, open_all};
use crate::alert::Alert;
use crate::app::cli::ReplayArgs;
use crate::app::report::Report;
use crate::config::{Overrides, RuleOverride};
use crate::pipeline::Sink;
use crate::source::Files;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;

pub(super) fn replay(config: Option<&std::path::Path>, a: &ReplayArgs) -> Result<ExitCode> {
    let ov = Overrides {
        format: a.format.clone(),
        threads: a.threads,
        rule: a.target.as_ref().map(|t| RuleOverride {
            target: t.clone(),
            field: a.field.clone(),
            threshold: a.threshold,
            window: a.window.clone(),
            cooldown: a.cooldown.clone(),
        }),
    };
    let cfg = load(config, &ov)?;
    let source = cfg.source_index(a.source.as_deref()).map_err(anyhow::Error::msg)?;
    let mut engine = cfg.engine();
    engine.settings.peaks = a.report.is_some();
    let report = a.report.as_ref().map(|_| Report::new(&cfg.rules));
    let inputs = open_all(&a.files)?;
    let total: u64 = a
        .files
        .iter()
        .filter(|f| !f.ends_with(".gz") && *f != "-")
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(!a.no_progress && std::io::stderr().is_terminal(), total);
    let mut sink = ReplaySink {
        out: BufWriter::new(std::io::stdout().lock()),
        json: a.json,
        bar,
        error: None,
        report,
    };
    let summary = engine.run(Box::new(Files { inputs, source }), None, &mut sink)?;
    sink.bar.finish_and_clear();
    if let (Some(path), Some(report)) = (&a.report, &sink.report) {
        std::fs::write(path, report.html(&a.files, &summary))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if let Some(e) = sink.error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing alerts to standard output");
    }
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Prints `replay`'s alerts and moves its progress bar.
struct ReplaySink<W: Write> {
    out: W,
    json: bool,
    bar: ProgressBar,
    error: Option<std::io::Error>,
    report: Option<Report>,
}

impl<W: Write> Sink for ReplaySink<W> {
    fn alert(&mut self, al: Alert) {
        if let Some(r) = self.report.as_mut() {
            r.alert(&al);
        }
        let line = if self.json { al.to_json() } else { al.to_text() };
        if let Err(e) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            self.error.get_or_insert(e);
        }
    }

    fn progress(&mut self, bytes: u64) {
        self.bar.set_position(bytes);
    }

    fn peaks(&mut self, rule: usize, peaks: &[(String, u32)]) {
        if let Some(r) = self.report.as_mut() {
            r.peaks(rule, peaks);
        }
    }
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
