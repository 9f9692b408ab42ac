//! Webhook: an HTTP(S) POST of each alert, through `ureq` (blocking, rustls;
//! it runs on the output's own thread).
//!
//! The body is the alert's JSON, or a template such as Slack's or
//! Mattermost's `{"text": "{message}"}`, whose placeholders are replaced by
//! JSON-escaped values. A 2xx answer delivers the alert; a timeout, a
//! connection failure, 408, 429 or 5xx is retried by the output thread with
//! backoff; any other 4xx is a configuration problem that retrying cannot
//! fix, so it is logged and the alert dropped from this output.

use super::Deliver;
use crate::alert::Alert;
use crate::config::WebhookOutput;
use std::io;

/// Placeholders of a webhook body template, with the alert field each takes.
const FIELDS: [&str; 11] = [
    "rule",
    "key",
    "client",
    "count",
    "threshold",
    "window_s",
    "time",
    "file",
    "line",
    "message",
    "id",
];

/// A webhook destination.
pub struct Webhook {
    cfg: WebhookOutput,
    agent: ureq::Agent,
}

impl Webhook {
    /// A sender for a validated output.
    pub fn new(cfg: WebhookOutput) -> Webhook {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Webhook { cfg, agent }
    }
}

/// Renders a body template for an alert (values JSON-escaped, no quotes added).
pub fn render(template: &str, a: &Alert) -> String {
    let value = |name: &str| -> serde_json::Value {
        match name {
            "rule" => a.rule.clone().into(),
            "key" | "client" => a.key.clone().into(),
            "count" => a.count.into(),
            "threshold" => a.threshold.into(),
            "window_s" => a.window_s.into(),
            "time" => a.time.clone().into(),
            "file" => a.file.clone().into(),
            "line" => a.line.into(),
            "message" => a.message.clone().into(),
            _ => a.id.clone().unwrap_or_default().into(),
        }
    };
    let mut out = template.to_string();
    for name in FIELDS {
        let pattern = format!("{{{name}}}");
        if out.contains(&pattern) {
            let json = value(name).to_string();
            let text = json.strip_prefix('"').and_then(|j| j.strip_suffix('"')).unwrap_or(&json);
            out = out.replace(&pattern, text);
        }
    }
    out
}

/// Checks a template: only known placeholders, and valid JSON once rendered.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or("");
        let name: String =
            after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if after.get(name.len()..).is_some_and(|r| r.starts_with('}'))
            && !name.is_empty()
            && !FIELDS.contains(&name.as_str())
        {
            return Err(format!("unknown placeholder {{{name}}}: use {}", FIELDS.join(", ")));
        }
        rest = after;
    }
    let sample = Alert {
        id: Some("id".into()),
        rule: "r\"".into(),
        key: "192.0.2.1".into(),
        count: 10,
        threshold: 10,
        window_s: 600,
        time: "2026-01-01T00:00:00+00:00".into(),
        file: "f".into(),
        line: 1,
        message: "m \"q\" \\ \n".into(),
    };
    serde_json::from_str::<serde_json::Value>(&render(template, &sample))
        .map(|_| ())
        .map_err(|e| format!("does not give valid JSON ({e}); write placeholders inside JSON strings, e.g. '{{\"text\": \"{{message}}\"}}'"))
}

impl Deliver for Webhook {
    fn name(&self) -> String {
        format!("webhook {}", self.cfg.url)
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        let body = match &self.cfg.body {
            Some(t) => render(t, alert),
            None => alert.to_json(),
        };
        let resp = self
            .agent
            .post(&self.cfg.url)
            .content_type("application/json")
            .send(body.as_bytes())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(io::Error::other(format!("HTTP status {status}"))),
            _ => {
                tracing::error!(output = %self.name(), status, "Webhook refused the alert; not retrying (check the URL and the body template).");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_values_and_are_checked() {
        let a = Alert {
            id: None,
            rule: "r".into(),
            key: "1.2.3.4".into(),
            count: 3,
            threshold: 3,
            window_s: 60,
            time: "t".into(),
            file: "f".into(),
            line: 9,
            message: "say \"hi\"\n".into(),
        };
        assert_eq!(
            render(r#"{"text": "{message}", "n": {count}}"#, &a),
            r#"{"text": "say \"hi\"\n", "n": 3}"#
        );
        assert!(check_template(r#"{"text": "{message}"}"#).is_ok());
        assert!(
            check_template(r#"{"text": "{nope}"}"#)
                .unwrap_err()
                .contains("unknown placeholder {nope}")
        );
        assert!(check_template(r#"{"text": {message}}"#).unwrap_err().contains("valid JSON"));
    }
}
