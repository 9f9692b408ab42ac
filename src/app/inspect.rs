//! `logwarden parse`: how each line is understood — what to run when an
//! alert did or did not fire.

use super::load;
use crate::app::cli::ParseArgs;
use crate::config::Overrides;
use crate::parse::client::Key;
use crate::parse::normalize::Normalized;
use crate::parse::time::rfc3339;
use crate::parse::{Parser, Record, Skip};
use crate::rules::RuleSet;
use crate::source::Input;
use crate::template::sanitize;
use anyhow::{Context, Result};
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

pub(super) fn parse(config: Option<&std::path::Path>, a: &ParseArgs) -> Result<ExitCode> {
    let ov = Overrides { format: a.format.clone(), ..Overrides::default() };
    let cfg = load(config, &ov)?;
    let source = cfg.source_index(a.source.as_deref()).map_err(anyhow::Error::msg)?;
    let parser = cfg.parser(source);
    let rules = cfg.rule_set();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let limits = (source, cfg.sources[source].ipv6_prefix);
    for f in &a.files {
        let input = Input::from_arg(f);
        let (reader, _) = input.open().with_context(|| format!("cannot open {f}"))?.into_reader();
        let mut reader = std::io::BufReader::new(reader);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).with_context(|| format!("reading {f}"))? == 0 {
                break;
            }
            n += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = describe_line(&parser, &rules, limits, line, f, n, a.json);
            if !super::written(writeln!(out, "{text}")) {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    super::written(out.flush());
    Ok(ExitCode::SUCCESS)
}

/// One line of `parse` output.
fn describe_line(
    parser: &Parser,
    rules: &RuleSet,
    (source, prefix): (usize, u8),
    line: &[u8],
    file: &str,
    n: u64,
    json: bool,
) -> String {
    let parsed =
        if line.len() > parser.max_line() { Err(Skip::TooLong) } else { parser.parse(line) };
    match parsed {
        Ok(r) => {
            let mut norm = Normalized::default();
            let mut matched: Vec<&str> = Vec::new();
            let mut keys: Vec<String> = Vec::new();
            let client = Key::of(r.client, prefix);
            let allowed = rules.events(&r, source, line, &mut norm, |i| {
                let rule = &rules.rules[i];
                if rule.key_of(&r, client).is_some() {
                    matched.push(rule.name.as_str());
                    keys.push(rule.key_text(&r, client, prefix));
                }
            });
            let normalized = r.request.is_some_and(|q| norm.of(q));
            let seen = Seen {
                rules: &matched,
                keys: &keys,
                headers: &parser.headers(),
                allowed,
                normalized_path: if normalized { norm.path() } else { r.path() },
            };
            if json { record_json(&r, file, n, &seen) } else { record_text(&r, file, n, &seen) }
        }
        Err(e) if json => {
            serde_json::json!({"file": file, "line": n, "error": e.describe(), "reason": e.name()})
                .to_string()
        }
        Err(e) => {
            format!("{}:{n}: error: {} ({})", sanitize(file.as_bytes()), e.describe(), e.name())
        }
    }
}

fn opt(b: Option<&[u8]>) -> serde_json::Value {
    b.map_or(serde_json::Value::Null, |v| sanitize(v).into())
}

/// What the rules make of a line.
struct Seen<'a> {
    /// The rules that count it.
    rules: &'a [&'a str],
    /// The key each of them counts it under.
    keys: &'a [String],
    /// The other headers the format logs, with their slots.
    headers: &'a [(&'a str, usize)],
    /// Whether an allow-list kept it from a rule.
    allowed: bool,
    /// The path as rules on `path` read it.
    normalized_path: &'a [u8],
}

fn record_json(r: &Record<'_>, file: &str, n: u64, seen: &Seen<'_>) -> String {
    serde_json::json!({
        "file": file,
        "line": n,
        "format": r.kind.name(),
        "client": r.client.to_string(),
        "time": rfc3339(r.time),
        "method": opt(r.request.map(|_| r.method())),
        "path": opt(r.request.map(|_| r.path())),
        "query": opt(r.request.map(|_| r.query())),
        "request": opt(r.request),
        "status": r.status,
        "referer": opt(r.referer),
        "user_agent": opt(r.user_agent),
        "vhost": opt(r.vhost),
        "user": opt(r.user),
        "host": opt(r.host),
        "headers": seen.headers.iter().map(|&(h, k)| (h.to_string(), opt(r.headers[k]))).collect::<serde_json::Map<_, _>>(),
        "normalized_path": opt(r.request.map(|_| seen.normalized_path)),
        "rules": seen.rules,
        "keys": seen.keys,
        "allowed": seen.allowed,
    })
    .to_string()
}

fn record_text(r: &Record<'_>, file: &str, n: u64, seen: &Seen<'_>) -> String {
    let mut s = format!(
        "{}:{n}: {} client={} time={}",
        sanitize(file.as_bytes()),
        r.kind.name(),
        r.client,
        rfc3339(r.time)
    );
    if let Some(req) = r.request {
        s.push_str(&format!(" request=\"{}\"", sanitize(req)));
    }
    if let Some(st) = r.status {
        s.push_str(&format!(" status={st}"));
    }
    s.push_str(&format!(" rules=[{}]", seen.rules.join(",")));
    if seen.allowed {
        s.push_str(" allowed");
    }
    s
}
