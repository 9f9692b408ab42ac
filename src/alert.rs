//! Alerts: what a rule decided, rendered for people and machines.
//!
//! Text taken from a log line (request, user agent, …) is attacker-controlled;
//! the message template escapes it (see [`crate::template`]), so a request can
//! never forge a second line or another client's alert downstream.

use crate::parse::Record;
use crate::parse::time::rfc3339;
use crate::rules::Rule;
use crate::template::{Value, json_escapes, sanitize};
use serde::{Deserialize, Serialize};

/// The placeholders of a rule's message template.
pub const MESSAGE_VARS: [&str; 19] = [
    "client",
    "key",
    "vhost",
    "user",
    "host",
    "target",
    "count",
    "window",
    "threshold",
    "rule",
    "time",
    "file",
    "line",
    "request",
    "method",
    "path",
    "status",
    "user_agent",
    "referer",
];

/// One alert, as printed by `replay --json` and written by outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable identity (file, line offset, rule) in `run`, so a restart never
    /// delivers an alert twice; absent in `replay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Rule name.
    pub rule: String,
    /// The key that crossed the threshold: the client (or its IPv6 prefix),
    /// or the rule's key parts separated by spaces.
    pub key: String,
    /// For a rule keyed by other parts than the client alone (a user, a
    /// virtual host): the client of the line that raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
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
    /// In a farm (`[cluster]`): the node whose line raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// In a farm: who decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// Who decided a farm node's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The farm-wide window (`"farm"`).
    Farm,
    /// This node alone: Redis did not answer (`"local"`).
    Local,
}

impl Scope {
    /// The name JSON gives it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Farm => "farm",
            Scope::Local => "local",
        }
    }
}

/// Appends `"name":` and `value` as a JSON string.
fn json_field(out: &mut Vec<u8>, name: &str, value: &str) {
    json_str(out, name);
    out.push(b':');
    json_str(out, value);
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if !json_escapes(s) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).unwrap_or(());
    }
}

/// Appends `prefix` and `n`.
fn json_number(out: &mut Vec<u8>, prefix: &str, n: u64) {
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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
            client: (!rule.by_client()).then(|| at.record.client.to_string()),
            key,
            count,
            threshold: rule.spec.threshold,
            window_s: rule.spec.window,
            time,
            file: at.file.to_string(),
            line: at.line,
            message: String::new(),
            node: None,
            scope: None,
        };
        let message = rule.message.render(|var| match MESSAGE_VARS.get(var) {
            Some(name) => a.value(name, rule, at.record),
            // `{header:Name}`: the placeholders after MESSAGE_VARS are the
            // other headers, by slot (see `config`).
            None => {
                let slot = at.record.headers.get(var - MESSAGE_VARS.len()).copied().flatten();
                Value::Bytes(slot.unwrap_or(b"-"))
            }
        });
        a.message = message;
        a
    }

    /// The value of a message placeholder (one of [`MESSAGE_VARS`]).
    fn value<'a>(&'a self, var: &str, rule: &'a Rule, r: &Record<'a>) -> Value<'a> {
        match var {
            "client" => Value::Str(self.client_or_key().into()),
            "key" => Value::Str(self.key.as_str().into()),
            "vhost" => Value::Bytes(r.vhost.unwrap_or(b"-")),
            "user" => Value::Bytes(r.user.unwrap_or(b"-")),
            "host" => Value::Bytes(r.host.unwrap_or(b"-")),
            "target" => Value::Str(rule.target()),
            "count" => Value::Num(u64::from(self.count)),
            "window" => Value::Str(rule.window_text().into()),
            "threshold" => Value::Num(u64::from(self.threshold)),
            "rule" => Value::Str(self.rule.as_str().into()),
            "time" => Value::Str(self.time.as_str().into()),
            "file" => Value::Str(self.file.as_str().into()),
            "line" => Value::Num(self.line),
            "request" => Value::Bytes(r.request.unwrap_or(b"-")),
            "method" => Value::Bytes(r.method()),
            "path" => Value::Bytes(r.path()),
            "status" => r.status.map_or(Value::Str("-".into()), |s| Value::Num(u64::from(s))),
            "user_agent" => Value::Bytes(r.user_agent.unwrap_or(b"-")),
            _ => Value::Bytes(r.referer.unwrap_or(b"-")),
        }
    }

    /// The alert as one line of JSON.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON of strings is UTF-8")
    }

    /// Appends the alert's JSON: what serde_json writes for it, written by
    /// hand because serde_json's escaping, byte by byte, was a fifth of the
    /// thread that renders alerts in a replay where many lines alert.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(id) = &self.id {
            json_field(out, "id", id);
            out.push(b',');
        }
        json_field(out, "rule", &self.rule);
        out.push(b',');
        json_field(out, "key", &self.key);
        if let Some(client) = &self.client {
            out.push(b',');
            json_field(out, "client", client);
        }
        json_number(out, ",\"count\":", u64::from(self.count));
        json_number(out, ",\"threshold\":", u64::from(self.threshold));
        json_number(out, ",\"window_s\":", u64::from(self.window_s));
        out.push(b',');
        json_field(out, "time", &self.time);
        out.push(b',');
        json_field(out, "file", &self.file);
        json_number(out, ",\"line\":", self.line);
        out.push(b',');
        json_field(out, "message", &self.message);
        if let Some(node) = &self.node {
            out.push(b',');
            json_field(out, "node", node);
        }
        if let Some(scope) = self.scope {
            out.push(b',');
            json_field(out, "scope", scope.name());
        }
        out.push(b'}');
    }

    /// The client of the line that raised it: the key, for a rule keyed by
    /// the client.
    pub fn client_or_key(&self) -> &str {
        self.client.as_deref().unwrap_or(&self.key)
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

#[cfg(test)]
impl Alert {
    /// An alert for tests (the other modules' too): rule `r`, key
    /// `192.0.2.1`, 3 events of a threshold of 3 in 60 s, message `m`; no
    /// id, no client, node or scope.
    pub fn sample() -> Alert {
        Alert {
            id: None,
            rule: "r".into(),
            key: "192.0.2.1".into(),
            client: None,
            count: 3,
            threshold: 3,
            window_s: 60,
            time: "2026-11-28T20:45:07+00:00".into(),
            file: "f".into(),
            line: 1,
            message: "m".into(),
            node: None,
            scope: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(text: &str) -> Alert {
        Alert {
            rule: format!("r{text}"),
            key: text.to_string(),
            count: 10,
            threshold: 4_000_000_000,
            window_s: 0,
            time: "2026-11-29T18:00:00+01:00".into(),
            file: format!("/logs/{text}"),
            line: u64::MAX,
            message: format!("IP {text} \\ \"x\""),
            ..Alert::sample()
        }
    }

    #[test]
    fn json_is_what_serde_writes() {
        let texts = ["plain", "quote\" back\\ slash", "ctl\u{1}\n\t\u{7f}", "é ✓ \u{2028}", ""];
        for text in texts {
            let mut a = alert(text);
            assert_eq!(a.to_json(), serde_json::to_string(&a).unwrap(), "{text:?}");
            a.id = Some(format!("1-2-{text}"));
            a.node = Some(format!("web{text}"));
            for scope in [Scope::Farm, Scope::Local] {
                a.scope = Some(scope);
                assert_eq!(a.to_json(), serde_json::to_string(&a).unwrap(), "{text:?}");
                assert_eq!(serde_json::from_str::<Alert>(&a.to_json()).unwrap(), a);
            }
        }
    }
}
