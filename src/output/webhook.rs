//! Webhook: an HTTP(S) POST of each alert, through `ureq` (blocking, rustls;
//! it runs on the output's own thread).
//!
//! The body is the alert's JSON, or a template such as Slack's or
//! Mattermost's `{"text": "{message}"}`, whose placeholders are replaced by
//! JSON-escaped values. A 2xx answer delivers the alert; a timeout, a
//! connection failure, 408, 429 or 5xx is retried by the output thread with
//! backoff; any other answer (another 4xx, a redirect) is a configuration
//! problem that retrying cannot fix, so it is logged and the alert dropped
//! from this output (and `test-alert` reports it, through `settle`).

use super::Deliver;
use crate::alert::Alert;
use crate::template::{Mode, Template, Value};
use std::io;
use std::time::Duration;

/// Settings of a webhook output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `http://…` or `https://…`.
    pub url: String,
    /// Per request.
    pub timeout: Duration,
    /// Body template (`{message}` …); `None` posts the alert's JSON.
    pub body: Option<Template>,
    /// Request headers added (`Authorization`, …), checked by
    /// [`parse_header`]; a `Content-Type` replaces `application/json`.
    pub headers: Vec<(String, String)>,
}

/// Headers the HTTP client sets itself, from the request and its body.
const OWN_HEADERS: [&str; 5] = ["host", "content-length", "transfer-encoding", "connection", "te"];

/// A `headers` entry, checked: a header name (RFC 9110 token) that the
/// client does not set itself, and a value without control characters.
pub fn parse_header(name: &str, value: &str) -> Result<(String, String), String> {
    let header = ureq::http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("{name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
    })?;
    if OWN_HEADERS.contains(&header.as_str()) {
        return Err(format!("{name:?} is set by the HTTP client itself; remove it"));
    }
    ureq::http::HeaderValue::from_str(value)
        .map_err(|_| format!("the value of {name:?} holds a control character (a line break?)"))?;
    Ok((name.to_string(), value.to_string()))
}

/// The `Content-Type` among `headers`, if one is set (it replaces
/// `application/json`).
pub fn content_type(headers: &[(String, String)]) -> Option<&str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str())
}

/// Placeholders of a webhook body template (`client` is the key, but for a
/// rule keyed by other parts: then the client of the line that raised it).
pub const BODY_VARS: [&str; 11] = [
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

/// Whether `url` is one a webhook can post to: `http://` or `https://`
/// and a host, as the HTTP client reads it (a space or a bad port refused
/// here, not at the first alert).
pub fn is_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else { return false };
    // `port()` is `None` for a port that is not a number up to 65535.
    let host_port = uri.authority().map_or("", |a| a.as_str().rsplit('@').next().unwrap_or(""));
    let after_host = host_port.rsplit(']').next().unwrap_or("");
    let port_ok = !after_host.contains(':') || uri.port().is_some();
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && port_ok
}

/// `url` as logs, metrics, the status page and `check` show it: its scheme,
/// host and port. A webhook's user and password are secrets, and so is
/// often its path or query (Slack's and Discord's URLs, `?token=`): whoever
/// has the URL can post. Whatever follows the host is shown as `/…`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "…".to_string() };
    // `find` gives a char boundary: the split cannot panic.
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let more = if tail.trim_start_matches('/').is_empty() { "" } else { "/…" };
    format!("{scheme}://{host}{more}")
}

/// A webhook destination.
pub struct Webhook {
    cfg: WebhookSettings,
    agent: ureq::Agent,
    /// Why the last alert was refused, until [`Deliver::settle`] tells it.
    refused: Option<String>,
}

impl Webhook {
    /// A sender for a validated output.
    pub fn new(cfg: WebhookSettings) -> Webhook {
        let agent = ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots().clone()).build())
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            // A redirect is answered, not followed: a 301 or 302 would turn
            // the POST into a GET, whose 2xx would pass for a delivery.
            .max_redirects(0)
            .build()
            .into();
        Webhook { cfg, agent, refused: None }
    }
}

/// The CAs an `https://` webhook is checked against: the system's (or
/// those `SSL_CERT_FILE` / `SSL_CERT_DIR` name), as for a `rediss://`
/// farm, so an internal CA the machine trusts is trusted; Mozilla's roots
/// where the system has none. Read once.
fn roots() -> &'static ureq::tls::RootCerts {
    static ROOTS: std::sync::OnceLock<ureq::tls::RootCerts> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "Cannot read some of the system's CA certificates.");
        }
        if found.certs.is_empty() {
            return ureq::tls::RootCerts::WebPki;
        }
        let certs: Vec<_> =
            found.certs.iter().map(|c| ureq::tls::Certificate::from_der(c).to_owned()).collect();
        ureq::tls::RootCerts::new_with_certs(&certs)
    })
}

/// Renders a body template for an alert (values JSON-escaped, no quotes added).
pub fn render(template: &Template, a: &Alert) -> String {
    template.render(|var| match BODY_VARS[var] {
        "rule" => Value::Str(a.rule.as_str().into()),
        "key" => Value::Str(a.key.as_str().into()),
        "client" => Value::Str(a.client_or_key().into()),
        "count" => Value::Num(u64::from(a.count)),
        "threshold" => Value::Num(u64::from(a.threshold)),
        "window_s" => Value::Num(u64::from(a.window_s)),
        "time" => Value::Str(a.time.as_str().into()),
        "file" => Value::Str(a.file.as_str().into()),
        "line" => Value::Num(a.line),
        "message" => Value::Str(a.message.as_str().into()),
        _ => Value::Str(a.id.as_deref().unwrap_or_default().into()),
    })
}

/// Parses a body template: only known placeholders, and valid JSON once
/// rendered — unless the body is sent as something else (`json` false: a
/// `Content-Type` header such as `text/plain`, for ntfy), then plain text
/// with its values sanitized.
pub fn parse_body(text: &str, json: bool) -> Result<Template, String> {
    if !json {
        return Template::parse(text, &BODY_VARS, Mode::Text);
    }
    let template = Template::parse(text, &BODY_VARS, Mode::Json)?;
    let sample = Alert {
        id: Some("id".into()),
        rule: "r\"".into(),
        key: "192.0.2.1".into(),
        client: None,
        count: 10,
        threshold: 10,
        window_s: 600,
        time: "2026-01-01T00:00:00+00:00".into(),
        file: "f".into(),
        line: 1,
        message: "m \"q\" \\ \n".into(),
        node: Some("web01".into()),
        scope: Some(crate::alert::Scope::Farm),
    };
    serde_json::from_str::<serde_json::Value>(&render(&template, &sample))
        .map(|_| template)
        .map_err(|e| format!("does not give valid JSON ({e}); write placeholders inside JSON strings, e.g. '{{\"text\": \"{{message}}\"}}', or send plain text with headers = {{ Content-Type = \"text/plain\" }}"))
}

impl Deliver for Webhook {
    fn name(&self) -> String {
        format!("webhook {}", shown_url(&self.cfg.url))
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        let body = match &self.cfg.body {
            Some(t) => render(t, alert),
            None => alert.to_json(),
        };
        let mut req = self.agent.post(&self.cfg.url);
        if content_type(&self.cfg.headers).is_none() {
            req = req.content_type("application/json");
        }
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        let resp = req.send(body.as_bytes()).map_err(|e| io::Error::other(e.to_string()))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(io::Error::other(format!("HTTP status {status}"))),
            _ => {
                let why = match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                    Some(to) if to.contains("://") => {
                        format!("HTTP status {status}, moved to {}", shown_url(to))
                    }
                    Some(_) => format!("HTTP status {status}, moved to another path of this host"),
                    None => format!("HTTP status {status}"),
                };
                tracing::error!(output = %self.name(), "Webhook refused the alert ({why}); not retrying (check the URL and the body template).");
                self.refused = Some(why);
                Ok(())
            }
        }
    }

    fn settle(&mut self) -> io::Result<()> {
        match self.refused.take() {
            Some(why) => Err(io::Error::other(format!("refused ({why}); not retried"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        assert!(parse_header("Authorization", "Bearer x").is_ok());
        assert!(parse_header("Host", "h").unwrap_err().contains("set by the HTTP client itself"));
        assert!(parse_header("Bad Name", "x").unwrap_err().contains("is not a header name"));
        assert!(parse_header("X", "a\r\nInjected: 1").unwrap_err().contains("control character"));
    }

    #[test]
    fn urls_a_webhook_can_post_to() {
        for good in
            ["http://h", "https://alertmanager:9093/api", "http://alice:pw@[::1]:8080/x?a=b"]
        {
            assert!(is_url(good), "{good}");
        }
        for bad in
            ["ftp://h.example", "http://", "https://exa mple.com", "http://h:99999", "h.example"]
        {
            assert!(!is_url(bad), "{bad}");
        }
    }

    #[test]
    fn a_url_is_shown_without_what_could_be_its_secret() {
        let cases = [
            ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/…"),
            ("http://alice:s3cret@127.0.0.1:8080/hook", "http://127.0.0.1:8080/…"),
            ("https://h.example?token=abc", "https://h.example/…"),
            ("https://u:p@[::1]:9/#frag", "https://[::1]:9/…"),
            ("https://h.example/", "https://h.example"),
            ("http://h.example", "http://h.example"),
        ];
        for (url, shown) in cases {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }

    #[test]
    fn templates_escape_values_and_are_checked() {
        let a = Alert { message: "say \"hi\"\n".into(), ..Alert::sample() };
        let t = parse_body(r#"{"text": "{message}", "n": {count}}"#, true).unwrap();
        assert_eq!(render(&t, &a), r#"{"text": "say \"hi\"\n", "n": 3}"#);
        assert!(parse_body(r#"{"text": "{message}"}"#, true).is_ok());
        assert!(
            parse_body(r#"{"text": "{nope}"}"#, true)
                .unwrap_err()
                .contains("unknown placeholder {nope}")
        );
        assert!(parse_body(r#"{"text": {message}}"#, true).unwrap_err().contains("valid JSON"));
        // One pass: a placeholder inside a value (from the log line) stays text.
        let t = parse_body(r#"{"m": "{message}", "id": "{id}"}"#, true).unwrap();
        let b = Alert { message: "GET /{id}{client}".into(), id: Some("X".into()), ..a.clone() };
        assert_eq!(render(&t, &b), r#"{"m": "GET /{id}{client}", "id": "X"}"#);
        // Plain text (another Content-Type): values sanitized, not JSON-escaped.
        let t = parse_body("{message} from {client}", false).unwrap();
        assert_eq!(render(&t, &a), "say \"hi\"\\x0a from 192.0.2.1");
    }
}
