//! Configuration: one TOML file, read into raw serde structs (unknown keys
//! rejected), completed with the built-in defaults, then validated into
//! [`Config`]. Every error names the file, the line and the key, and says what
//! is allowed. The built-in defaults reproduce the old Python script.

use crate::alert::Template;
use crate::parse::client::Cidr;
use crate::parse::time::Zone;
use crate::parse::{ClientSource, Format};
use crate::rules::{FieldSel, Rule};
use crate::window::WindowSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The file read when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/logwarden/logwarden.toml";

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A syntax error, unknown key, or bad value.
    #[error("{file}:{line}: {key}{message}")]
    Invalid {
        /// The file (or `built-in defaults`, `command line`).
        file: String,
        /// 1-based line of the offending value, 0 when unknown.
        line: usize,
        /// The key, as `rule[2].threshold`, followed by ": ", or empty.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// A duration written as seconds (`600`) or with a unit (`"10m"`, `"1h"`, `"30s"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawDuration {
    /// Plain seconds.
    Secs(i64),
    /// Text with an optional `s`, `m`, `h` or `d` suffix.
    Text(String),
}

type S<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    source: RawSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule: Option<Vec<RawRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Vec<RawOutput>>,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    engine: RawEngine,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: S<String>,
    timezone: S<String>,
    format: S<String>,
    start_at: S<String>,
    poll_interval: S<RawDuration>,
    rotate_wait: S<RawDuration>,
    file_events: S<bool>,
    client: S<String>,
    trusted_proxies: S<Vec<String>>,
    ipv6_prefix: S<i64>,
    max_line_bytes: S<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: S<String>,
    field: S<String>,
    contains: S<String>,
    regex: S<String>,
    threshold: S<i64>,
    window: S<RawDuration>,
    cooldown: S<RawDuration>,
    key: S<String>,
    message: S<String>,
    status: S<Vec<i64>>,
    method: S<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    #[serde(rename = "type")]
    kind: S<String>,
    path: S<String>,
    command: S<Vec<String>>,
    timeout: S<RawDuration>,
    max_concurrent: S<i64>,
    url: S<String>,
    body: S<String>,
    target: S<String>,
    format: S<String>,
    facility: S<String>,
    severity: S<String>,
    tag: S<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: S<String>,
    cleanup_interval: S<RawDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    threads: S<i64>,
}

/// Where reading starts in a file seen for the first time without saved state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At its end, like the old script.
    End,
    /// At its beginning.
    Beginning,
}

/// The log source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Path, strftime pattern (`%Y-%m-%d`) or glob of the log files.
    pub path: String,
    /// Zone for today's file name and for times written without offset.
    pub zone: Zone,
    /// The line format.
    pub format: Format,
    /// Where a first run starts reading.
    pub start_at: StartAt,
    /// Polling period where file events are unavailable.
    pub poll_interval: Duration,
    /// How long a file that is no longer current is read after it went quiet.
    pub rotate_wait: Duration,
    /// How `path` names files.
    pub spec: crate::follow::PathSpec,
    /// Use file system events (false: poll every `poll_interval`).
    pub file_events: bool,
    /// Where the client address comes from.
    pub client: ClientSource,
    /// IPv6 clients are grouped by this prefix length (128 = not grouped).
    pub ipv6_prefix: u8,
    /// Longer lines are skipped and counted.
    pub max_line_bytes: usize,
}

/// Syslog severity/facility and transport of a syslog output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogOutput {
    /// `unix:/dev/log`, `udp://host:port` or `tcp://host:port`.
    pub target: String,
    /// `rfc3164` or `rfc5424`.
    pub format: String,
    /// Facility number (RFC 5424 §6.2.1).
    pub facility: u8,
    /// Severity number, 0 (emerg) to 7 (debug).
    pub severity: u8,
    /// TAG / APP-NAME.
    pub tag: String,
}

/// One output alerts go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputConfig {
    /// The system log.
    Syslog(SyslogOutput),
    /// One JSON object per alert, appended to a file.
    Jsonl(PathBuf),
    /// A program run per alert.
    Exec(ExecOutput),
    /// An HTTP(S) POST per alert.
    Webhook(WebhookOutput),
}

/// An HTTP(S) POST per alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutput {
    /// `http://…` or `https://…`.
    pub url: String,
    /// Per request.
    pub timeout: Duration,
    /// Body template (`{message}` …); `None` posts the alert's JSON.
    pub body: Option<String>,
}

/// A program run per alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Program and arguments (no shell).
    pub command: Vec<String>,
    /// A run is killed after this long.
    pub timeout: Duration,
    /// Runs at once, at most.
    pub max_concurrent: usize,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (`None` for the built-in defaults).
    pub file: Option<PathBuf>,
    /// The log source.
    pub source: SourceConfig,
    /// Detection rules, in file order.
    pub rules: Vec<Rule>,
    /// Alert outputs.
    pub outputs: Vec<OutputConfig>,
    /// Directory for saved state.
    pub state_dir: PathBuf,
    /// How often keys with nothing left in their window are evicted.
    pub cleanup_interval: Duration,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    effective: String,
}

/// Options from the command line that replace parts of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--format`.
    pub format: Option<String>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// `--target` with its companions: one rule instead of the file's rules.
    pub rule: Option<RuleOverride>,
}

/// A single rule defined on the command line.
#[derive(Debug, Default, Clone)]
pub struct RuleOverride {
    /// Literal to look for.
    pub target: String,
    /// Field to look in (default `request`).
    pub field: Option<String>,
    /// Threshold (default 10).
    pub threshold: Option<i64>,
    /// Window (default 10m).
    pub window: Option<String>,
    /// Cooldown (default: the window).
    pub cooldown: Option<String>,
}

impl Config {
    /// Loads `path`; without one, [`DEFAULT_PATH`] if it exists, else the defaults.
    pub fn load(path: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        let path = path.map(Path::to_path_buf).or_else(|| {
            let d = PathBuf::from(DEFAULT_PATH);
            d.exists().then_some(d)
        });
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::parse(&text, Some(&p), ov)
            }
            None => Config::parse("", None, ov),
        }
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        let name = file.map_or("built-in defaults".to_string(), |p| p.display().to_string());
        let cx = Cx { file: &name, text };
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| cx.line(s.start));
            cx.err_at(line, "", e.message().trim_end().to_string())
        })?;
        apply_overrides(&mut raw, ov);
        fill_defaults(&mut raw);
        let effective = toml::to_string_pretty(&raw).unwrap_or_default();
        let mut cfg = validate(&cx, raw)?;
        cfg.file = file.map(Path::to_path_buf);
        cfg.effective = effective;
        Ok(cfg)
    }

    /// The effective configuration (file, overrides and defaults) as TOML.
    pub fn effective_toml(&self) -> &str {
        &self.effective
    }

    /// Worker threads to use: the configured number, or one per core.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

fn sp<T>(v: T) -> S<T> {
    Some(Spanned::new(0..0, v))
}

fn apply_overrides(raw: &mut RawConfig, ov: &Overrides) {
    if let Some(f) = &ov.format {
        raw.source.format = sp(f.clone());
    }
    if let Some(t) = ov.threads {
        raw.engine.threads = sp(t as i64);
    }
    if let Some(r) = &ov.rule {
        raw.rule = Some(vec![RawRule {
            name: sp("command-line".into()),
            field: r.field.clone().and_then(sp),
            contains: sp(r.target.clone()),
            threshold: r.threshold.and_then(sp),
            window: r.window.clone().and_then(|w| sp(RawDuration::Text(w))),
            cooldown: r.cooldown.clone().and_then(|c| sp(RawDuration::Text(c))),
            ..RawRule::default()
        }]);
    }
}

fn fill_defaults(raw: &mut RawConfig) {
    let s = &mut raw.source;
    s.path.get_or_insert_with(|| Spanned::new(0..0, "/logs/apache/ssl_www_log-%Y-%m-%d".into()));
    s.timezone.get_or_insert_with(|| Spanned::new(0..0, "local".into()));
    s.format.get_or_insert_with(|| Spanned::new(0..0, "combined".into()));
    s.start_at.get_or_insert_with(|| Spanned::new(0..0, "end".into()));
    s.poll_interval.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("1s".into())));
    s.rotate_wait.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("5m".into())));
    s.file_events.get_or_insert_with(|| Spanned::new(0..0, true));
    s.client.get_or_insert_with(|| Spanned::new(0..0, "%h".into()));
    s.trusted_proxies.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
    s.ipv6_prefix.get_or_insert_with(|| Spanned::new(0..0, 128));
    s.max_line_bytes.get_or_insert_with(|| Spanned::new(0..0, 65536));
    let rules = raw.rule.get_or_insert_with(|| vec![RawRule::default()]);
    for (i, r) in rules.iter_mut().enumerate() {
        let name = if i == 0 { "today_download".to_string() } else { format!("rule{}", i + 1) };
        r.name.get_or_insert_with(|| Spanned::new(0..0, name));
        r.field.get_or_insert_with(|| Spanned::new(0..0, "request".into()));
        if r.contains.is_none() && r.regex.is_none() && r.status.is_none() && r.method.is_none() {
            r.contains = sp("today_download".into());
        }
        r.threshold.get_or_insert_with(|| Spanned::new(0..0, 10));
        r.window.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("10m".into())));
        let window = r.window.clone();
        r.cooldown.get_or_insert_with(|| window.expect("filled above"));
        r.key.get_or_insert_with(|| Spanned::new(0..0, "client".into()));
        r.message.get_or_insert_with(|| {
            Spanned::new(
                0..0,
                "SUSPICIOUS ACTIVITY: IP {client} accessed {target} {count} times in {window}"
                    .into(),
            )
        });
    }
    let outputs = raw.output.get_or_insert_with(|| vec![RawOutput::default()]);
    for o in outputs.iter_mut() {
        o.kind.get_or_insert_with(|| Spanned::new(0..0, "syslog".into()));
        if o.kind.as_ref().is_some_and(|k| k.get_ref() == "syslog") {
            o.target.get_or_insert_with(|| Spanned::new(0..0, "unix:/dev/log".into()));
            o.format.get_or_insert_with(|| Spanned::new(0..0, "rfc3164".into()));
            o.facility.get_or_insert_with(|| Spanned::new(0..0, "user".into()));
            o.severity.get_or_insert_with(|| Spanned::new(0..0, "err".into()));
            o.tag.get_or_insert_with(|| Spanned::new(0..0, "AlbumMonitor".into()));
        }
    }
    raw.state.dir.get_or_insert_with(|| Spanned::new(0..0, "/var/lib/logwarden".into()));
    raw.state
        .cleanup_interval
        .get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("5m".into())));
    raw.engine.threads.get_or_insert_with(|| Spanned::new(0..0, 0));
}

/// Locates errors in the configuration text.
struct Cx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Cx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        1 + self.text.as_bytes()[..end].iter().filter(|&&c| c == b'\n').count()
    }

    fn err_at(&self, line: usize, key: &str, message: String) -> ConfigError {
        let file = if line == 0 && self.text.is_empty() {
            "command line / defaults".to_string()
        } else {
            self.file.to_string()
        };
        let key = if key.is_empty() { String::new() } else { format!("{key}: ") };
        ConfigError::Invalid { file, line, key, message }
    }

    /// An error about the value `v` of `key`.
    fn err<T>(&self, v: &Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        let span = v.span();
        let line = if span.is_empty() && span.start == 0 { 0 } else { self.line(span.start) };
        self.err_at(line, key, message.into())
    }
}

/// The value of a filled field.
fn get<T>(v: &S<T>) -> &Spanned<T> {
    v.as_ref().expect("filled by fill_defaults")
}

fn validate(cx: &Cx, raw: RawConfig) -> Result<Config, ConfigError> {
    let source = validate_source(cx, &raw.source)?;
    let rules = raw
        .rule
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| validate_rule(cx, r, &format!("rule[{}]", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(cx, raw.rule.as_deref().unwrap_or_default())?;
    let outputs = raw
        .output
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, o)| validate_output(cx, o, &format!("output[{}]", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let cleanup = get(&raw.state.cleanup_interval);
    let cleanup_interval = duration(cx, cleanup, "state.cleanup_interval")?;
    if cleanup_interval.is_zero() {
        return Err(cx.err(cleanup, "state.cleanup_interval", "must be longer than 0 seconds"));
    }
    let threads = get(&raw.engine.threads);
    let n = usize::try_from(*threads.get_ref())
        .ok()
        .filter(|n| *n <= 1024)
        .ok_or_else(|| cx.err(threads, "engine.threads", "must be 0 (one per core) to 1024"))?;
    Ok(Config {
        file: None,
        source,
        rules,
        outputs,
        state_dir: PathBuf::from(get(&raw.state.dir).get_ref()),
        cleanup_interval,
        threads: n,
        effective: String::new(),
    })
}

fn validate_source(cx: &Cx, s: &RawSource) -> Result<SourceConfig, ConfigError> {
    let tz = get(&s.timezone);
    let zone = match tz.get_ref().as_str() {
        "local" => Zone::local(),
        "UTC" | "utc" => Zone::Utc,
        name => Zone::named(name).ok_or_else(|| {
            cx.err(tz, "source.timezone", format!("unknown time zone {name:?}: use \"local\", \"UTC\" or an IANA name such as \"Europe/Berlin\""))
        })?,
    };
    let client = get(&s.client);
    let header = match client.get_ref().as_str() {
        "%h" | "%a" => None,
        c => match c.strip_prefix("%{").and_then(|r| r.strip_suffix("}i")) {
            Some(h) if !h.is_empty() => Some(h.to_string()),
            _ => {
                return Err(cx.err(client, "source.client", format!("{c:?} is not allowed: use \"%h\", \"%a\" or a header such as \"%{{X-Forwarded-For}}i\"")));
            }
        },
    };
    let proxies = get(&s.trusted_proxies);
    let trusted = proxies
        .get_ref()
        .iter()
        .map(|p| {
            Cidr::parse(p).ok_or_else(|| {
                cx.err(
                    proxies,
                    "source.trusted_proxies",
                    format!("{p:?} is not an address or block such as \"10.0.0.0/8\""),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fmt = get(&s.format);
    let format = Format::from_spec(fmt.get_ref(), header.as_deref())
        .map_err(|m| cx.err(fmt, "source.format", m))?;
    let start = get(&s.start_at);
    let start_at = match start.get_ref().as_str() {
        "end" => StartAt::End,
        "beginning" => StartAt::Beginning,
        o => {
            return Err(cx.err(
                start,
                "source.start_at",
                format!("{o:?} is not allowed: use \"end\" or \"beginning\""),
            ));
        }
    };
    let poll = get(&s.poll_interval);
    let poll_interval = duration(cx, poll, "source.poll_interval")?;
    if poll_interval.is_zero() {
        return Err(cx.err(poll, "source.poll_interval", "must be longer than 0 seconds"));
    }
    let rw = get(&s.rotate_wait);
    let rotate_wait = duration(cx, rw, "source.rotate_wait")?;
    let v6 = get(&s.ipv6_prefix);
    let ipv6_prefix =
        u8::try_from(*v6.get_ref()).ok().filter(|p| (1..=128).contains(p)).ok_or_else(|| {
            cx.err(
                v6,
                "source.ipv6_prefix",
                "must be 1 to 128 (128 = every address apart; 64 groups a /64)",
            )
        })?;
    let max = get(&s.max_line_bytes);
    let max_line_bytes = usize::try_from(*max.get_ref())
        .ok()
        .filter(|m| (256..=crate::source::MAX_LINE_LIMIT).contains(m))
        .ok_or_else(|| {
            cx.err(
                max,
                "source.max_line_bytes",
                format!("must be 256 to {}", crate::source::MAX_LINE_LIMIT),
            )
        })?;
    let path = get(&s.path);
    let spec = crate::follow::PathSpec::parse(path.get_ref())
        .map_err(|m| cx.err(path, "source.path", format!("{:?} {m}", path.get_ref())))?;
    Ok(SourceConfig {
        path: path.get_ref().clone(),
        zone,
        format,
        start_at,
        poll_interval,
        rotate_wait,
        spec,
        file_events: *get(&s.file_events).get_ref(),
        client: ClientSource { header, trusted },
        ipv6_prefix,
        max_line_bytes,
    })
}

fn validate_rule(cx: &Cx, r: &RawRule, at: &str) -> Result<Rule, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let name = get(&r.name);
    if name.get_ref().is_empty() || name.get_ref().chars().any(|c| c.is_control()) {
        return Err(cx.err(name, &key("name"), "must be non-empty printable text"));
    }
    let f = get(&r.field);
    let field = FieldSel::from_name(f.get_ref()).ok_or_else(|| {
        cx.err(f, &key("field"), format!("{:?} is not a field: use request, method, path, query, status, user_agent, referer or line", f.get_ref()))
    })?;
    if let Some(c) = &r.contains
        && c.get_ref().is_empty()
    {
        return Err(cx.err(c, &key("contains"), "must not be empty"));
    }
    let regex = match &r.regex {
        Some(re) => Some(regex::bytes::Regex::new(re.get_ref()).map_err(|e| {
            cx.err(re, &key("regex"), format!("is not a valid regular expression: {e}"))
        })?),
        None => None,
    };
    let t = get(&r.threshold);
    let threshold = u32::try_from(*t.get_ref()).ok().filter(|t| *t >= 1).ok_or_else(|| {
        cx.err(t, &key("threshold"), format!("must be at least 1 (got {})", t.get_ref()))
    })?;
    let w = get(&r.window);
    let window = secs_u32(cx, w, &key("window"))?;
    if window == 0 {
        return Err(cx.err(w, &key("window"), "must be longer than 0 seconds"));
    }
    let cooldown = secs_u32(cx, get(&r.cooldown), &key("cooldown"))?;
    let k = get(&r.key);
    if k.get_ref() != "client" {
        return Err(cx.err(
            k,
            &key("key"),
            format!("{:?} is not supported: use \"client\"", k.get_ref()),
        ));
    }
    let status = match &r.status {
        Some(s) => s
            .get_ref()
            .iter()
            .map(|v| u16::try_from(*v).ok().filter(|v| (100..=999).contains(v)))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(|| cx.err(s, &key("status"), "must list HTTP status codes (100 to 999)"))?,
        None => Vec::new(),
    };
    let methods = r.method.as_ref().map_or(Vec::new(), |m| {
        m.get_ref().iter().map(|s| s.to_ascii_uppercase().into_bytes()).collect()
    });
    let m = get(&r.message);
    let message = Template::parse(m.get_ref()).map_err(|e| cx.err(m, &key("message"), e))?;
    Ok(Rule::new(
        name.get_ref().clone(),
        field,
        r.contains.as_ref().map(|c| c.get_ref().clone()),
        regex,
        status,
        methods,
        WindowSpec { threshold, window, cooldown },
        message,
    ))
}

fn check_unique_names(cx: &Cx, rules: &[RawRule]) -> Result<(), ConfigError> {
    for (i, r) in rules.iter().enumerate() {
        let n = get(&r.name);
        if rules[..i].iter().any(|o| get(&o.name).get_ref() == n.get_ref()) {
            let msg = format!("{:?} is used by an earlier rule; names must be unique", n.get_ref());
            return Err(cx.err(n, &format!("rule[{}].name", i + 1), msg));
        }
    }
    Ok(())
}

/// RFC 5424 facility names and their numbers.
const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Severity names (with the aliases syslog tools accept) and their numbers.
const SEVERITIES: [(&str, u8); 11] = [
    ("emerg", 0),
    ("panic", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

fn lookup(table: &[(&str, u8)], name: &str) -> Option<u8> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn validate_output(cx: &Cx, o: &RawOutput, at: &str) -> Result<OutputConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let kind = get(&o.kind);
    match kind.get_ref().as_str() {
        "syslog" => {}
        "jsonl" => return validate_jsonl(cx, o, at),
        "exec" => return validate_exec(cx, o, at),
        "webhook" => return validate_webhook(cx, o, at),
        other => {
            let msg = format!(
                "{other:?} is not an output type: use \"syslog\", \"jsonl\", \"exec\" or \"webhook\""
            );
            return Err(cx.err(kind, &key("type"), msg));
        }
    }
    check_keys(cx, o, at, "syslog")?;
    let fac = get(&o.facility);
    // The old script's "user.error" spelling carries the severity too.
    let (fac_name, sev_from_fac) = match fac.get_ref().split_once('.') {
        Some((f, s)) => (f, Some(s)),
        None => (fac.get_ref().as_str(), None),
    };
    let facility = lookup(&FACILITIES, fac_name).ok_or_else(|| {
        let names: Vec<&str> = FACILITIES.iter().map(|f| f.0).collect();
        cx.err(
            fac,
            &key("facility"),
            format!("{fac_name:?} is not a facility: use one of {}", names.join(", ")),
        )
    })?;
    let sev = get(&o.severity);
    let sev_name = match (sev_from_fac, sev.span().is_empty()) {
        (Some(s), true) => s,
        _ => sev.get_ref().as_str(),
    };
    let severity = lookup(&SEVERITIES, sev_name).ok_or_else(|| {
        cx.err(sev, &key("severity"), format!("{sev_name:?} is not a severity: use emerg, alert, crit, err, warning, notice, info or debug"))
    })?;
    let tag = get(&o.tag);
    let t = tag.get_ref();
    if t.is_empty() || t.len() > 32 || !t.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(cx.err(tag, &key("tag"), format!("{t:?} would be cut or mangled by syslog: use 1 to 32 printable ASCII characters without spaces")));
    }
    let target = get(&o.target);
    let tg = target.get_ref();
    let ok = tg.strip_prefix("unix:").is_some_and(|p| p.starts_with('/'))
        || ["udp://", "tcp://"].iter().any(|s| {
            tg.strip_prefix(s).is_some_and(|hp| {
                hp.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            })
        });
    if !ok {
        return Err(cx.err(target, &key("target"), format!("{tg:?} is not a syslog target: use \"unix:/dev/log\", \"udp://host:514\" or \"tcp://host:601\"")));
    }
    let format = get(&o.format);
    if !matches!(format.get_ref().as_str(), "rfc3164" | "rfc5424") {
        return Err(cx.err(
            format,
            &key("format"),
            format!("{:?} is not allowed: use \"rfc3164\" or \"rfc5424\"", format.get_ref()),
        ));
    }
    Ok(OutputConfig::Syslog(SyslogOutput {
        target: tg.clone(),
        format: format.get_ref().clone(),
        facility,
        severity,
        tag: t.clone(),
    }))
}

/// The keys each output type takes (besides `type`).
const OUTPUT_KEYS: [(&str, &[&str]); 4] = [
    ("syslog", &["target", "format", "facility", "severity", "tag"]),
    ("jsonl", &["path"]),
    ("exec", &["command", "timeout", "max_concurrent"]),
    ("webhook", &["url", "timeout", "body"]),
];

/// Rejects keys that belong to another output type.
fn check_keys(cx: &Cx, o: &RawOutput, at: &str, kind: &str) -> Result<(), ConfigError> {
    let present = [
        ("target", o.target.as_ref().map(Spanned::span)),
        ("format", o.format.as_ref().map(Spanned::span)),
        ("facility", o.facility.as_ref().map(Spanned::span)),
        ("severity", o.severity.as_ref().map(Spanned::span)),
        ("tag", o.tag.as_ref().map(Spanned::span)),
        ("path", o.path.as_ref().map(Spanned::span)),
        ("command", o.command.as_ref().map(Spanned::span)),
        ("timeout", o.timeout.as_ref().map(Spanned::span)),
        ("max_concurrent", o.max_concurrent.as_ref().map(Spanned::span)),
        ("url", o.url.as_ref().map(Spanned::span)),
        ("body", o.body.as_ref().map(Spanned::span)),
    ];
    let allowed = OUTPUT_KEYS.iter().find(|(k, _)| *k == kind).map_or(&[][..], |(_, keys)| *keys);
    for (name, span) in present {
        if let Some(span) = span.filter(|_| !allowed.contains(&name)) {
            let owners: Vec<&str> = OUTPUT_KEYS
                .iter()
                .filter(|(_, keys)| keys.contains(&name))
                .map(|(k, _)| *k)
                .collect();
            let msg = format!(
                "belongs to {} outputs, not to a {kind} output (it takes {})",
                owners.join(" and "),
                allowed.join(", ")
            );
            return Err(cx.err(&Spanned::new(span, ()), &format!("{at}.{name}"), msg));
        }
    }
    Ok(())
}

fn validate_webhook(cx: &Cx, o: &RawOutput, at: &str) -> Result<OutputConfig, ConfigError> {
    check_keys(cx, o, at, "webhook")?;
    let key = |k: &str| format!("{at}.{k}");
    let Some(url) = &o.url else {
        return Err(cx.err_at(
            0,
            &key("url"),
            "is required for a webhook output, e.g. \"https://hooks.example.com/T000/B000\"".into(),
        ));
    };
    let u = url.get_ref();
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
        return Err(cx.err(url, &key("url"), format!("{u:?} is not an http:// or https:// URL")));
    }
    let timeout = match &o.timeout {
        Some(t) => duration(cx, t, &key("timeout"))?,
        None => Duration::from_secs(10),
    };
    if let Some(b) = &o.body {
        crate::output::webhook::check_template(b.get_ref())
            .map_err(|m| cx.err(b, &key("body"), m))?;
    }
    Ok(OutputConfig::Webhook(WebhookOutput {
        url: u.clone(),
        timeout,
        body: o.body.as_ref().map(|b| b.get_ref().clone()),
    }))
}

fn validate_exec(cx: &Cx, o: &RawOutput, at: &str) -> Result<OutputConfig, ConfigError> {
    check_keys(cx, o, at, "exec")?;
    let key = |k: &str| format!("{at}.{k}");
    let Some(cmd) = &o.command else {
        return Err(cx.err_at(0, &key("command"), "is required for an exec output: the program and its arguments, e.g. [\"/usr/local/bin/ban\", \"--quiet\"]".into()));
    };
    let program = cmd
        .get_ref()
        .first()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| cx.err(cmd, &key("command"), "must name a program"))?;
    if !program_exists(program) {
        return Err(cx.err(
            cmd,
            &key("command"),
            format!(
                "{program:?} is not an executable file (give a full path, or a program on PATH)"
            ),
        ));
    }
    let timeout = match &o.timeout {
        Some(t) => duration(cx, t, &key("timeout"))?,
        None => Duration::from_secs(30),
    };
    if timeout.is_zero() {
        return Err(cx.err(
            o.timeout.as_ref().expect("set"),
            &key("timeout"),
            "must be longer than 0 seconds",
        ));
    }
    let max_concurrent = match &o.max_concurrent {
        Some(m) => usize::try_from(*m.get_ref())
            .ok()
            .filter(|m| (1..=256).contains(m))
            .ok_or_else(|| cx.err(m, &key("max_concurrent"), "must be 1 to 256"))?,
        None => 4,
    };
    Ok(OutputConfig::Exec(ExecOutput { command: cmd.get_ref().clone(), timeout, max_concurrent }))
}

/// Whether `program` is an executable file, by path or on `PATH`.
fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| executable(&d.join(program))))
}

fn validate_jsonl(cx: &Cx, o: &RawOutput, at: &str) -> Result<OutputConfig, ConfigError> {
    check_keys(cx, o, at, "jsonl")?;
    match &o.path {
        Some(p) if !p.get_ref().is_empty() => Ok(OutputConfig::Jsonl(PathBuf::from(p.get_ref()))),
        Some(p) => Err(cx.err(p, &format!("{at}.path"), "must not be empty")),
        None => Err(cx.err_at(
            0,
            &format!("{at}.path"),
            "is required for a jsonl output (the file alerts are appended to)".into(),
        )),
    }
}

/// Parses a duration value.
pub fn parse_duration(d: &RawDuration) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{d:?} is not a duration: use seconds (600) or a number with s, m, h or d (\"10m\")"
        )
    };
    let secs = match d {
        RawDuration::Secs(s) => u64::try_from(*s).map_err(|_| bad())?,
        RawDuration::Text(t) => {
            let t = t.trim();
            if let Some(ms) = t.strip_suffix("ms") {
                return ms.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| bad());
            }
            let units = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];
            let (num, mult) = units
                .iter()
                .find_map(|&(u, m)| t.strip_suffix(u).map(|n| (n, m)))
                .unwrap_or((t, 1));
            num.trim().parse::<u64>().map_err(|_| bad())?.checked_mul(mult).ok_or_else(bad)?
        }
    };
    Ok(Duration::from_secs(secs))
}

fn duration(cx: &Cx, v: &Spanned<RawDuration>, key: &str) -> Result<Duration, ConfigError> {
    parse_duration(v.get_ref()).map_err(|m| cx.err(v, key, m))
}

fn secs_u32(cx: &Cx, v: &Spanned<RawDuration>, key: &str) -> Result<u32, ConfigError> {
    let d = duration(cx, v, key)?;
    u32::try_from(d.as_secs()).map_err(|_| cx.err(v, key, "is too long (at most 136 years)"))
}

/// Renders seconds for messages: `10 minutes`, `1 hour`, `90 seconds`.
pub fn human_duration(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Some(Path::new("/etc/lw.toml")), &Overrides::default())
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_reproduce_the_old_script() {
        let c = parse("").unwrap();
        assert_eq!(c.source.path, "/logs/apache/ssl_www_log-%Y-%m-%d");
        assert_eq!(c.rules.len(), 1);
        let r = &c.rules[0];
        assert_eq!(r.name, "today_download");
        assert_eq!(r.spec, WindowSpec { threshold: 10, window: 600, cooldown: 600 });
        assert_eq!(
            c.outputs,
            vec![OutputConfig::Syslog(SyslogOutput {
                target: "unix:/dev/log".into(),
                format: "rfc3164".into(),
                facility: 1,
                severity: 3,
                tag: "AlbumMonitor".into()
            })]
        );
        assert_eq!(c.cleanup_interval, Duration::from_secs(300));
        assert!(c.effective_toml().contains("today_download"));
    }

    #[test]
    fn durations() {
        let d = |t: &str| parse_duration(&RawDuration::Text(t.into()));
        assert_eq!(d("10m").unwrap().as_secs(), 600);
        assert_eq!(d("600").unwrap().as_secs(), 600);
        assert_eq!(d("1h").unwrap().as_secs(), 3600);
        assert_eq!(d("250ms").unwrap().as_millis(), 250);
        assert!(d("ten").is_err());
        assert_eq!(parse_duration(&RawDuration::Secs(30)).unwrap().as_secs(), 30);
        assert!(parse_duration(&RawDuration::Secs(-1)).is_err());
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "1 hour");
        assert_eq!(human_duration(90), "90 seconds");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[source]\nformat = \"combined\"\n\n[[rule]]\nthreshold = 0\n");
        assert_eq!(e, "/etc/lw.toml:5: rule[1].threshold: must be at least 1 (got 0)");
        let e = err("[[rule]]\ncontains = \"x\"\nwindow = \"0s\"\n");
        assert!(e.starts_with("/etc/lw.toml:3: rule[1].window: must be longer"), "{e}");
        let e = err("[[output]]\ntag = \"ThisTagIsMuchTooLongForSyslogToKeepIt\"\n");
        assert!(e.starts_with("/etc/lw.toml:2: output[1].tag:"), "{e}");
        let e = err("[[output]]\ntag = \"Album\\u0007\"\n");
        assert!(e.contains("output[1].tag"), "{e}");
        let e = err("[source]\nformatt = \"combined\"\n");
        assert!(e.starts_with("/etc/lw.toml:2: unknown field `formatt`"), "{e}");
        let e = err("[[rule]]\nregex = \"(\"\n");
        assert!(e.starts_with("/etc/lw.toml:2: rule[1].regex:"), "{e}");
        let e = err("[[rule]]\nfield = \"body\"\n");
        assert!(e.contains("use request, method"), "{e}");
        let e = err("[[output]]\ntype = \"exec\"\ncommand = [\"/nonexistent/ban\"]\n");
        assert!(
            e.starts_with(
                "/etc/lw.toml:3: output[1].command: \"/nonexistent/ban\" is not an executable"
            ),
            "{e}"
        );
        let e = err(
            "[[output]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", \"true\"]\nmax_concurrent = 0\n",
        );
        assert!(e.contains("output[1].max_concurrent: must be 1 to 256"), "{e}");
        let e = err("[[output]]\ntimeout = \"1s\"\n");
        assert!(e.contains("output[1].timeout: belongs to exec and webhook outputs"), "{e}");
        let e = err("[[output]]\nfacility = \"usr\"\n");
        assert!(e.contains("not a facility"), "{e}");
        let e = err("[[rule]]\nmessage = \"{clinet}\"\n");
        assert!(e.contains("rule[1].message"), "{e}");
        let e = err("[source]\nformat = \"%h %l\"\n");
        assert!(e.contains("no %t"), "{e}");
    }

    #[test]
    fn old_spellings_and_several_blocks() {
        let c = parse(
            "[[rule]]\nname = \"a\"\ncontains = \"x\"\nstatus = [404, 403]\nmethod = [\"post\"]\ncooldown = 0\n\
             [[rule]]\nname = \"b\"\nregex = \"^/login\"\nfield = \"path\"\nwindow = 60\n\
             [[output]]\nfacility = \"user.error\"\n",
        )
        .unwrap();
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].spec.cooldown, 0);
        assert_eq!(c.rules[1].spec, WindowSpec { threshold: 10, window: 60, cooldown: 60 });
        let OutputConfig::Syslog(s) = &c.outputs[0] else { panic!("syslog output") };
        assert_eq!((s.facility, s.severity), (1, 3));
        let c = parse("[[output]]\ntype = \"jsonl\"\npath = \"/tmp/a.jsonl\"\n").unwrap();
        assert_eq!(c.outputs, vec![OutputConfig::Jsonl(PathBuf::from("/tmp/a.jsonl"))]);
        assert!(
            err("[[output]]\ntype = \"jsonl\"\ntag = \"x\"\npath = \"/a\"\n")
                .contains("output[1].tag: belongs to syslog")
        );
        assert!(err("[[output]]\ntype = \"jsonl\"\n").contains("output[1].path: is required"));
        assert!(err("[[rule]]\nname = \"a\"\n[[rule]]\nname = \"a\"\n").contains("unique"));
    }

    #[test]
    fn overrides_replace_rules() {
        let ov = Overrides {
            rule: Some(RuleOverride {
                target: "/login".into(),
                threshold: Some(3),
                ..Default::default()
            }),
            threads: Some(2),
            format: Some("common".into()),
        };
        let c = Config::parse("[[rule]]\ncontains = \"x\"\n", None, &ov).unwrap();
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].spec.threshold, 3);
        assert_eq!(c.threads, 2);
    }
}
