//! Alerts: what a rule decided, rendered for people and machines.
//!
//! Text taken from a log line (request, user agent, …) is attacker-controlled.
//! [`sanitize`] escapes control characters and invalid UTF-8, so a request can
//! never forge a second line or another client's alert downstream.

use crate::config::human_duration;
use crate::parse::Record;
use crate::parse::time::rfc3339;
use crate::rules::Rule;
use serde::{Deserialize, Serialize};

/// A placeholder of a message template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Client,
    Target,
    Count,
    Window,
    Threshold,
    Rule,
    Time,
    File,
    Line,
    Request,
    Method,
    Path,
    Status,
    UserAgent,
    Referer,
}

const VARS: [(&str, Var); 15] = [
    ("client", Var::Client),
    ("target", Var::Target),
    ("count", Var::Count),
    ("window", Var::Window),
    ("threshold", Var::Threshold),
    ("rule", Var::Rule),
    ("time", Var::Time),
    ("file", Var::File),
    ("line", Var::Line),
    ("request", Var::Request),
    ("method", Var::Method),
    ("path", Var::Path),
    ("status", Var::Status),
    ("user_agent", Var::UserAgent),
    ("referer", Var::Referer),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A message template such as `IP {client} accessed {target} {count} times`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses a template; `{{` and `}}` are literal braces.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' | '}' if chars.peek() == Some(&c) => {
                    chars.next();
                    text.push(c);
                }
                '}' => return Err("has a lone '}': write '}}' for a literal brace".into()),
                '{' => {
                    let mut name = String::new();
                    let closed = chars.by_ref().any(|c| {
                        c == '}' || {
                            name.push(c);
                            false
                        }
                    });
                    if !closed {
                        return Err(format!("has an unclosed {{{name}"));
                    }
                    let var = VARS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(
                        || {
                            let names: Vec<&str> = VARS.iter().map(|v| v.0).collect();
                            format!(
                                "unknown or unclosed placeholder {{{name}}}: use {}",
                                names.join(", ")
                            )
                        },
                    )?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(var));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }
}

/// One alert, as printed by `replay --json` and written by outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable identity (file, line offset, rule) in `run`, so a restart never
    /// delivers an alert twice; absent in `replay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Rule name.
    pub rule: String,
    /// The key that crossed the threshold (the client, or its IPv6 prefix).
    pub key: String,
    /// Events in the window when it fired.
    pub count: u32,
    /// The rule's threshold.
    pub threshold: u32,
    /// The rule's window in seconds.
    pub window_s: u32,
    /// Time of the line that raised it, RFC 3339 in the line's own offset.
    pub time: String,
    /// The file that line is in.
    pub file: String,
    /// Its 1-based line number.
    pub line: u64,
    /// The rendered message.
    pub message: String,
}

/// Where an alert's line is and what it said.
pub struct Origin<'a> {
    /// File name.
    pub file: &'a str,
    /// 1-based line number.
    pub line: u64,
    /// The parsed line.
    pub record: &'a Record<'a>,
}

impl Alert {
    /// Builds the alert a rule raised on a line, with `count` events.
    pub fn new(rule: &Rule, key: String, count: u32, at: &Origin<'_>) -> Alert {
        let time = rfc3339(at.record.time);
        let mut a = Alert {
            id: None,
            rule: rule.name.clone(),
            key,
            count,
            threshold: rule.spec.threshold,
            window_s: rule.spec.window,
            time,
            file: at.file.to_string(),
            line: at.line,
            message: String::new(),
        };
        a.message = a.render(rule, &rule.message, at.record);
        a
    }

    fn render(&self, rule: &Rule, t: &Template, r: &Record<'_>) -> String {
        let mut out = String::new();
        for p in &t.0 {
            match p {
                Piece::Text(s) => out.push_str(s),
                Piece::Var(v) => self.render_var(&mut out, *v, rule, r),
            }
        }
        out
    }

    fn render_var(&self, out: &mut String, v: Var, rule: &Rule, r: &Record<'_>) {
        let text = match v {
            Var::Client => self.key.clone(),
            Var::Target => sanitize(rule.target().as_bytes()),
            Var::Count => self.count.to_string(),
            Var::Window => human_duration(u64::from(self.window_s)),
            Var::Threshold => self.threshold.to_string(),
            Var::Rule => self.rule.clone(),
            Var::Time => self.time.clone(),
            Var::File => sanitize(self.file.as_bytes()),
            Var::Line => self.line.to_string(),
            Var::Request => sanitize(r.request.unwrap_or(b"-")),
            Var::Method => sanitize(r.method()),
            Var::Path => sanitize(r.path()),
            Var::Status => r.status.map_or("-".to_string(), |s| s.to_string()),
            Var::UserAgent => sanitize(r.user_agent.unwrap_or(b"-")),
            Var::Referer => sanitize(r.referer.unwrap_or(b"-")),
        };
        out.push_str(&text);
    }

    /// The alert as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("alert fields serialize")
    }

    /// The alert as one line of text.
    pub fn to_text(&self) -> String {
        format!(
            "{} {}:{} [{}] {}",
            self.time,
            sanitize(self.file.as_bytes()),
            self.line,
            self.rule,
            self.message
        )
    }
}

/// Escapes bytes for a one-line message: control characters, DEL and invalid
/// UTF-8 become `\xNN`; printable text (also non-ASCII) stays.
pub fn sanitize(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut buf = [0; 4];
                c.encode_utf8(&mut buf).bytes().for_each(|byte| push_hex(&mut out, byte));
            } else {
                out.push(c);
            }
        }
        chunk.invalid().iter().for_each(|&byte| push_hex(&mut out, byte));
    }
    out
}

/// Appends `\xNN`.
fn push_hex(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 15)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert!(Template::parse("IP {client} {count}").is_ok());
        assert!(Template::parse("{{literal}}").is_ok());
        assert!(Template::parse("{nope}").unwrap_err().contains("placeholder {nope}"));
        assert!(Template::parse("{client").is_err());
        assert!(Template::parse("a } b").is_err());
    }

    #[test]
    fn sanitize_escapes_control_and_invalid_bytes() {
        assert_eq!(sanitize(b"GET /\r\n<13>x\x00\x1b[31m"), "GET /\\x0d\\x0a<13>x\\x00\\x1b[31m");
        assert_eq!(sanitize("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(sanitize(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(sanitize("\u{85}".as_bytes()), "\\xc2\\x85");
    }
}
