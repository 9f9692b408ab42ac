//! `logwarden replay`: files through the engine, alerts to standard output,
//! a progress bar and the summary to standard error.

use super::progress::Progress;
use super::{load, open_all};
use crate::alert::Alert;
use crate::app::cli::ReplayArgs;
use crate::app::report::Report;
use crate::config::{Overrides, RuleOverride};
use crate::parse::Parser;
use crate::parse::time::{Civil, Zone};
use crate::pipeline::Engine;
use crate::pipeline::Sink;
use crate::rules::Rule;
use crate::source::merge::Merge;
use crate::source::{Chunk, Damage, Files, Input, Source, order};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn replay(config: Option<&std::path::Path>, a: &ReplayArgs) -> Result<ExitCode> {
    let cfg = load(config, &overrides(a))?;
    let source = cfg.source_index(a.source.as_deref()).map_err(anyhow::Error::msg)?;
    let mut engine = cfg.engine();
    engine.settings.peaks = a.report.is_some();
    engine.settings.shard = a.shard;
    let zone = &cfg.sources[source].zone;
    engine.settings.since = a.since.as_deref().map(|t| time_arg(t, zone, false)).transpose()?;
    engine.settings.until = a.until.as_deref().map(|t| time_arg(t, zone, true)).transpose()?;
    let report = a.report.as_ref().map(|_| Report::new(&cfg.rules));
    let mut report_file = a.report.as_deref().map(ReportFile::open).transpose()?;
    // With --merge, each argument is one server's series.
    let groups: Vec<Vec<String>> = match a.merge {
        true => a
            .files
            .iter()
            .map(|f| series(std::slice::from_ref(f), a, &engine, source, &cfg.rules))
            .collect::<Result<_>>()?,
        false => vec![series(&a.files, a, &engine, source, &cfg.rules)?],
    };
    let files: Vec<String> = groups.iter().flatten().cloned().collect();
    let show = !a.no_progress && std::io::stderr().is_terminal();
    let mut sink = ReplaySink {
        out: std::io::stdout().lock(),
        pending: Vec::new(),
        json: a.json,
        progress: Progress::new(&groups, show),
        error: None,
        report,
    };
    let damage = Damage::default();
    let ran = input(a, groups, &files, &engine, source, &damage)
        .and_then(|i| Ok(engine.run(i, None, &mut sink)?));
    let summary = match ran {
        Ok(summary) => summary,
        Err(e) => {
            if let Some(f) = report_file {
                f.abandon();
            }
            return Err(e);
        }
    };
    sink.write_pending();
    sink.progress.finish();
    let damaged = damage.take();
    if let (Some(file), Some(report)) = (report_file.as_mut(), &sink.report) {
        file.write(&report.html(&files, &summary, &damaged))?;
    }
    if let Some(e) = sink.error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing alerts to standard output");
    }
    tell!("{summary}");
    if !damaged.is_empty() {
        let list: Vec<String> = damaged.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the scan is incomplete: {} file(s) could not be read to the end ({}); the lines before each failure were counted, the rest of that file was not",
            damaged.len(),
            list.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The report's file, opened before the replay: a path that cannot be
/// written is told at once, not after hours of logs. A report already
/// there is replaced only by a finished one.
struct ReportFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    created: bool,
}

impl ReportFile {
    fn open(path: &Path) -> Result<ReportFile> {
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        Ok(ReportFile { path: path.to_path_buf(), file, created })
    }

    /// Replaces what the file holds by `html`.
    fn write(&mut self, html: &str) -> Result<()> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(html.as_bytes()))
            .with_context(|| format!("cannot write the report to {}", self.path.display()))
    }

    /// The replay failed: a file made for the report is removed again.
    fn abandon(self) {
        if self.created {
            std::fs::remove_file(&self.path).unwrap_or(());
        }
    }
}

/// The configuration's changes asked for on the command line.
fn overrides(a: &ReplayArgs) -> Overrides {
    Overrides {
        format: a.format.clone(),
        threads: a.threads,
        rule: a.target.as_ref().map(|t| RuleOverride {
            target: t.clone(),
            field: a.field.clone(),
            threshold: a.threshold,
            window: a.window.clone(),
            cooldown: a.cooldown.clone(),
        }),
    }
}

/// What the engine reads: with `--merge`, each group (one server's
/// series) merged by time; else the files one after another.
fn input(
    a: &ReplayArgs,
    groups: Vec<Vec<String>>,
    files: &[String],
    engine: &Engine,
    source: usize,
    damage: &Damage,
) -> Result<Box<dyn Source>> {
    let damage = damage.clone();
    Ok(match a.merge {
        true => {
            let servers = groups
                .into_iter()
                .map(|g| g.iter().map(|f| Input::from_arg(f)).collect())
                .collect();
            Box::new(Merge { servers, parser: engine.parser(source).clone(), source, damage })
        }
        false => {
            let ahead = usize::try_from(a.read_ahead << 20).unwrap_or(usize::MAX);
            let decoders = engine.settings.threads;
            Box::new(Files { inputs: open_all(files)?, damage, source, ahead, decoders })
        }
    })
}

/// The files named by `args` in reading order: expanded, in time order
/// unless `--no-sort` (or standard input is among them), and without those
/// wholly outside `--since`/`--until`.
fn series(
    args: &[String],
    a: &ReplayArgs,
    engine: &Engine,
    source: usize,
    rules: &[Rule],
) -> Result<Vec<String>> {
    let files = order::expand(args).map_err(anyhow::Error::msg)?;
    if a.merge && files.iter().any(|f| f == "-") {
        anyhow::bail!("--merge reads files, not standard input (-)");
    }
    let keep = a.no_sort || files.iter().any(|f| f == "-");
    let files = if keep { files } else { order::time_order(files) };
    Ok(within(files, engine, source, rules))
}

/// `--since`/`--until` as Unix seconds: RFC 3339, a time without offset
/// in `zone`, or a date there from its start (`end`: to its end).
fn time_arg(text: &str, zone: &Zone, end: bool) -> Result<u32> {
    let in_zone = |d: jiff::civil::Date, (hour, minute, second): (u8, u8, u8)| {
        let (month, day) = (d.month() as u8, d.day() as u8);
        let civil = Civil { year: i64::from(d.year()), month, day, hour, minute, second };
        zone.resolve(&civil).map(|t| t.epoch)
    };
    // A time without an offset is the source's local time; jiff would also
    // read it as a date, dropping the time of day.
    let has_time = text.contains(['T', 't', ' ']);
    let epoch = match (text.parse::<jiff::Timestamp>(), text.parse::<jiff::civil::DateTime>()) {
        (Ok(t), _) => Some(t.as_second()),
        (_, Ok(dt)) if has_time => {
            let time = (dt.hour() as u8, dt.minute() as u8, dt.second() as u8);
            in_zone(dt.date(), time)
        }
        (_, Ok(dt)) => in_zone(dt.date(), if end { (23, 59, 59) } else { (0, 0, 0) }),
        _ => None,
    };
    epoch.and_then(|e| u32::try_from(e).ok()).with_context(|| {
        format!(
            "{text:?} is not a time: use RFC 3339 (2026-11-01T08:00:00Z), a local time \
             (2026-11-01T08:00:00, in the source's time zone) or a date (2026-11-01)"
        )
    })
}

/// The files that may hold lines within `--since`/`--until`: a plain file
/// whose first and last lines are both before one window (the longest
/// rule's) ahead of `since`, or both after `until`, is left out unread; a
/// compressed file only when its first line is after `until` (its last is
/// not known without reading it all). A file whose ends cannot be read or
/// understood is kept.
fn within(files: Vec<String>, engine: &Engine, source: usize, rules: &[Rule]) -> Vec<String> {
    let (since, until) = (engine.settings.since, engine.settings.until);
    if since.is_none() && until.is_none() {
        return files;
    }
    let longest = rules.iter().map(|r| r.spec.window).max().unwrap_or(0);
    let lo = since.map_or(0, |s| i64::from(s) - i64::from(longest));
    let hi = until.map_or(i64::MAX, i64::from);
    let parser = engine.parser(source);
    let (kept, left): (Vec<String>, Vec<String>) = files.into_iter().partition(|f| {
        let (first, last) = ends(Path::new(f), parser);
        !(first.is_some_and(|t| t > hi) || last.is_some_and(|t| t < lo))
    });
    if !left.is_empty() {
        tell!("{} file(s) left out, all their lines outside --since/--until", left.len());
    }
    kept
}

/// The times of a file's first and last lines (`None` where unknown; the
/// last is unknown for a compressed file).
fn ends(path: &Path, parser: &Parser) -> (Option<i64>, Option<i64>) {
    let time = |line: Vec<u8>| parser.parse(&line).ok().map(|r| r.time.epoch);
    let (first, last) = order::end_lines(path);
    (first.and_then(time), last.and_then(time))
}

/// Prints `replay`'s alerts and moves its progress bar.
struct ReplaySink<W: Write> {
    out: W,
    /// The current chunk's alerts, written out when it is done.
    pending: Vec<u8>,
    json: bool,
    progress: Progress,
    error: Option<std::io::Error>,
    report: Option<Report>,
}

impl<W: Write> ReplaySink<W> {
    /// Writes the alerts held, with the progress bar (on the same terminal,
    /// maybe) out of their way.
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (out, pending) = (&mut self.out, &self.pending);
        let written = self.progress.suspend(|| out.write_all(pending).and_then(|()| out.flush()));
        if let Err(e) = written {
            self.error.get_or_insert(e);
        }
        self.pending.clear();
    }
}

impl<W: Write> Sink for ReplaySink<W> {
    fn alert(&mut self, al: Alert) {
        if let Some(r) = self.report.as_mut() {
            r.alert(&al);
        }
        // JSON is written straight into the buffer, with no string per
        // alert (text, for people, goes through one).
        let p = &mut self.pending;
        match self.json {
            true => al.write_json(p),
            false => p.extend_from_slice(al.to_text().as_bytes()),
        }
        p.push(b'\n');
    }

    /// Alerts are written once per chunk, not per alert: hundreds of
    /// thousands of them must not slow the scan.
    fn progress(&mut self, chunk: &Chunk) {
        self.progress.chunk(chunk);
        self.write_pending();
    }

    fn peaks(&mut self, rule: usize, peaks: &[(String, u32)]) {
        if let Some(r) = self.report.as_mut() {
            r.peaks(rule, peaks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time without an offset is a time in the source's zone, not its
    /// date (jiff reads `2025-07-08T15:03:00` as a date too: the time of day
    /// was dropped, and `--until` took the whole day).
    #[test]
    fn since_and_until_read_times_dates_and_local_times() {
        let at = |text: &str, end: bool| time_arg(text, &Zone::Utc, end).unwrap();
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second() as u32;
        assert_eq!(at("2025-07-08T15:03:00+09:00", true), t("2025-07-08T06:03:00Z"));
        assert_eq!(at("2025-07-08T15:03:00", true), t("2025-07-08T15:03:00Z"));
        assert_eq!(at("2025-07-08 15:03", false), t("2025-07-08T15:03:00Z"));
        assert_eq!(at("2025-07-08", false), t("2025-07-08T00:00:00Z"));
        assert_eq!(at("2025-07-08", true), t("2025-07-08T23:59:59Z"));
        assert!(time_arg("yesterday", &Zone::Utc, false).is_err());
    }
}
