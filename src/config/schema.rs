//! The configuration schema: the TOML file as serde reads it (unknown keys
//! rejected, every value with its position in the file), the command-line
//! overrides, and the built-in defaults. Nothing here checks values or
//! touches the file system; [`super::build`] does that.

use super::Overrides;
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Spanned;

/// A duration written as seconds (`600`) or as text (`"10m"`, `"1h30m"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawDuration {
    /// Plain seconds.
    Secs(i64),
    /// Text: see [`crate::units::parse_duration`].
    Text(String),
}

impl RawDuration {
    /// The duration it stands for; the error says what is allowed.
    pub fn to_duration(&self) -> Result<std::time::Duration, String> {
        match self {
            RawDuration::Secs(s) => crate::units::from_secs(*s),
            RawDuration::Text(t) => crate::units::parse_duration(t),
        }
    }
}

/// `cluster.redis`: one URL, or a Redis Cluster's seed nodes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawRedis {
    /// One URL.
    One(String),
    /// Several URLs.
    Many(Vec<String>),
}

/// An optional value with its place in the file.
pub(super) type S<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) include: S<Vec<String>>,
    #[serde(default)]
    pub(super) source: RawSources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rule: Option<Vec<RawRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) output: Option<Vec<RawOutput>>,
    #[serde(default)]
    pub(super) allow: RawAllow,
    #[serde(default)]
    pub(super) state: RawState,
    #[serde(default)]
    pub(super) engine: RawEngine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) cluster: Option<RawCluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) http: Option<RawHttp>,
}

/// `[source]` (one source, named `default` unless it says otherwise) or
/// `[[source]]` blocks (each with a name).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum RawSources {
    One(Box<RawSource>),
    Many(Vec<RawSource>),
}

impl Default for RawSources {
    fn default() -> RawSources {
        RawSources::One(Box::default())
    }
}

impl RawSources {
    /// The sources with the names their settings are reported under
    /// (`source` or `source[2]`).
    pub(super) fn each(&self) -> Vec<(String, &RawSource)> {
        match self {
            RawSources::One(s) => vec![("source".to_string(), &**s)],
            RawSources::Many(v) => {
                v.iter().enumerate().map(|(i, s)| (format!("source[{}]", i + 1), s)).collect()
            }
        }
    }

    fn each_mut(&mut self) -> Vec<&mut RawSource> {
        match self {
            RawSources::One(s) => vec![&mut **s],
            RawSources::Many(v) => v.iter_mut().collect(),
        }
    }
}

// By hand rather than `#[serde(untagged)]`, which would replace the errors
// of a source's keys ("formatt is not a known key here") by "no variant".
impl<'de> Deserialize<'de> for RawSources {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawSources, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawSources;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [source] table or [[source]] blocks")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<RawSources, A::Error> {
                RawSource::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(|s| RawSources::One(Box::new(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, s: A) -> Result<RawSources, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(s))
                    .map(RawSources::Many)
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) name: S<String>,
    pub(super) path: S<String>,
    pub(super) timezone: S<String>,
    pub(super) format: S<String>,
    pub(super) start_at: S<String>,
    pub(super) poll_interval: S<RawDuration>,
    pub(super) rotate_wait: S<RawDuration>,
    pub(super) file_events: S<bool>,
    pub(super) client: S<String>,
    pub(super) trusted_proxies: S<Vec<String>>,
    pub(super) ipv6_prefix: S<i64>,
    pub(super) max_line_bytes: S<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: S<String>,
    pub(super) field: S<String>,
    pub(super) contains: S<String>,
    pub(super) regex: S<String>,
    pub(super) threshold: S<i64>,
    pub(super) window: S<RawDuration>,
    pub(super) cooldown: S<RawDuration>,
    pub(super) key: S<Names>,
    pub(super) distinct: S<String>,
    pub(super) message: S<String>,
    pub(super) status: S<Vec<i64>>,
    pub(super) method: S<Vec<String>>,
    pub(super) allow: S<Vec<String>>,
    pub(super) normalize: S<bool>,
    pub(super) ignore_case: S<bool>,
    pub(super) max_clients: S<i64>,
    pub(super) sources: S<Vec<String>>,
}

/// One name or a list of names (`key = "user"`, `key = ["client", "vhost"]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    /// The names, in order.
    pub(super) fn list(&self) -> Vec<&str> {
        match self {
            Names::One(n) => vec![n.as_str()],
            Names::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A file named by `include`: more rules and allow-list entries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInclude {
    #[serde(default)]
    pub(super) rule: Option<Vec<RawRule>>,
    #[serde(default)]
    pub(super) allow: Option<RawAllow>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    pub(super) clients: S<Vec<String>>,
    pub(super) files: S<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    #[serde(rename = "type")]
    pub(super) kind: S<String>,
    pub(super) path: S<String>,
    pub(super) command: S<Vec<String>>,
    pub(super) timeout: S<RawDuration>,
    pub(super) max_concurrent: S<i64>,
    #[serde(serialize_with = "hidden_url")]
    pub(super) url: S<String>,
    pub(super) body: S<String>,
    #[serde(serialize_with = "hidden_headers")]
    pub(super) headers: S<std::collections::BTreeMap<String, String>>,
    pub(super) target: S<String>,
    pub(super) format: S<String>,
    pub(super) facility: S<String>,
    pub(super) severity: S<String>,
    pub(super) tag: S<String>,
    pub(super) pid: S<bool>,
    pub(super) max_queued: S<i64>,
    pub(super) rules: S<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) dir: S<String>,
    pub(super) cleanup_interval: S<RawDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    #[serde(serialize_with = "hidden_redis")]
    pub(super) redis: S<RawRedis>,
    pub(super) node: S<String>,
    pub(super) prefix: S<String>,
    pub(super) timeout: S<RawDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: S<String>,
    #[serde(serialize_with = "hidden_token")]
    pub(super) token: S<String>,
    pub(super) unhealthy_after: S<RawDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) threads: S<i64>,
}

/// The configuration as TOML, with the passwords in Redis URLs, the HTTP
/// token and all but the host of webhook URLs hidden (it is printed by
/// `check`; the secret fields serialize hidden: `hidden_token`,
/// `hidden_redis`, `hidden_url`).
pub(super) fn effective_toml(raw: &RawConfig) -> String {
    toml::to_string_pretty(raw).unwrap_or_default()
}

/// `http.token`, as printed: `***`.
fn hidden_token<Z: serde::Serializer>(v: &S<String>, z: Z) -> Result<Z::Ok, Z::Error> {
    match v {
        Some(_) => z.serialize_str("***"),
        None => z.serialize_none(),
    }
}

/// A webhook's `url`, as printed: scheme, host and port (see
/// [`crate::output::webhook::shown_url`]).
fn hidden_url<Z: serde::Serializer>(v: &S<String>, z: Z) -> Result<Z::Ok, Z::Error> {
    match v {
        Some(u) => z.serialize_str(&crate::output::webhook::shown_url(u.get_ref())),
        None => z.serialize_none(),
    }
}

/// A webhook's `headers`, as printed: their names, each value `…` (an
/// `Authorization` holds a secret).
fn hidden_headers<Z: serde::Serializer>(
    v: &S<std::collections::BTreeMap<String, String>>,
    z: Z,
) -> Result<Z::Ok, Z::Error> {
    match v {
        Some(h) => z.collect_map(h.get_ref().keys().map(|k| (k, "…"))),
        None => z.serialize_none(),
    }
}

/// `cluster.redis`, as printed: the URLs without their passwords.
fn hidden_redis<Z: serde::Serializer>(v: &S<RawRedis>, z: Z) -> Result<Z::Ok, Z::Error> {
    match v.as_ref().map(Spanned::get_ref) {
        Some(RawRedis::One(u)) => z.serialize_str(&crate::farm::redacted(u)),
        Some(RawRedis::Many(urls)) => z.collect_seq(urls.iter().map(|u| crate::farm::redacted(u))),
        None => z.serialize_none(),
    }
}

/// A value that comes from no place in the file (a default or an override).
pub(super) fn sp<T>(v: T) -> S<T> {
    Some(Spanned::new(0..0, v))
}

/// Makes the file's relative paths (sources, jsonl outputs, the state
/// directory, allow-lists, included files) relative to the directory the
/// file is in, `base`, not to wherever the daemon runs (`/` under systemd).
pub(super) fn anchor_paths(raw: &mut RawConfig, base: &Path) {
    anchor_list(&mut raw.include, base);
    for s in raw.source.each_mut() {
        anchor(&mut s.path, base);
    }
    for o in raw.output.iter_mut().flatten() {
        anchor(&mut o.path, base);
    }
    anchor(&mut raw.state.dir, base);
    anchor_list(&mut raw.allow.files, base);
}

/// [`anchor_paths`] for an included file's allow-list files.
pub(super) fn anchor_included(inc: &mut RawInclude, base: &Path) {
    if let Some(allow) = inc.allow.as_mut() {
        anchor_list(&mut allow.files, base);
    }
}

/// `v` joined to `base` if it is a relative path.
fn anchor(v: &mut S<String>, base: &Path) {
    if let Some(p) = v.as_mut().filter(|p| Path::new(p.get_ref()).is_relative()) {
        let joined = base.join(p.get_ref()).display().to_string();
        *p = Spanned::new(p.span(), joined);
    }
}

/// [`anchor`] for each path of a list.
fn anchor_list(v: &mut S<Vec<String>>, base: &Path) {
    if let Some(list) = v.as_mut() {
        let joined = list.get_ref().iter().map(|p| base.join(p).display().to_string()).collect();
        *list = Spanned::new(list.span(), joined);
    }
}

/// Replaces parts of the file with the command line's options.
pub(super) fn apply_overrides(raw: &mut RawConfig, ov: &Overrides) {
    if let Some(f) = &ov.format {
        for s in raw.source.each_mut() {
            s.format = sp(f.clone());
        }
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

/// Fills every key the file left out with its built-in default; `host_name`
/// names this node in a farm.
pub(super) fn fill_defaults(raw: &mut RawConfig, host_name: &str) {
    if let Some(c) = raw.cluster.as_mut() {
        c.node.get_or_insert_with(|| Spanned::new(0..0, host_name.to_string()));
        c.prefix.get_or_insert_with(|| Spanned::new(0..0, "logwarden".into()));
        c.timeout.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("250ms".into())));
    }
    if let Some(h) = raw.http.as_mut() {
        h.listen.get_or_insert_with(|| Spanned::new(0..0, "127.0.0.1:9745".into()));
        h.unhealthy_after.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("1m".into())));
    }
    let one = matches!(raw.source, RawSources::One(_));
    for s in raw.source.each_mut() {
        fill_source(s, one);
    }
    let rules = raw.rule.get_or_insert_with(|| vec![RawRule::default()]);
    for (i, r) in rules.iter_mut().enumerate() {
        let name = if i == 0 { "today_download".to_string() } else { format!("rule{}", i + 1) };
        fill_rule(r, name);
    }
    let outputs = raw.output.get_or_insert_with(|| vec![RawOutput::default()]);
    for o in outputs.iter_mut() {
        o.kind.get_or_insert_with(|| Spanned::new(0..0, "syslog".into()));
        let max = crate::output::MAX_QUEUED as i64;
        o.max_queued.get_or_insert_with(|| Spanned::new(0..0, max));
        if o.kind.as_ref().is_some_and(|k| k.get_ref() == "syslog") {
            o.target.get_or_insert_with(|| Spanned::new(0..0, "unix:/dev/log".into()));
            o.format.get_or_insert_with(|| Spanned::new(0..0, "rfc3164".into()));
            o.facility.get_or_insert_with(|| Spanned::new(0..0, "user".into()));
            o.severity.get_or_insert_with(|| Spanned::new(0..0, "err".into()));
            o.tag.get_or_insert_with(|| Spanned::new(0..0, "AlbumMonitor".into()));
            o.pid.get_or_insert_with(|| Spanned::new(0..0, false));
        }
    }
    raw.allow.clients.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
    raw.allow.files.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
    raw.state.dir.get_or_insert_with(|| Spanned::new(0..0, "/var/lib/logwarden".into()));
    raw.state
        .cleanup_interval
        .get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("5m".into())));
    raw.engine.threads.get_or_insert_with(|| Spanned::new(0..0, 0));
}

/// Fills the keys a source left out; a lone `[source]` is named `default`.
fn fill_source(s: &mut RawSource, one: bool) {
    if one {
        s.name.get_or_insert_with(|| Spanned::new(0..0, "default".into()));
    }
    s.path.get_or_insert_with(|| Spanned::new(0..0, "/logs/apache/ssl_www_log-%Y-%m-%d".into()));
    s.timezone.get_or_insert_with(|| Spanned::new(0..0, "local".into()));
    s.format.get_or_insert_with(|| Spanned::new(0..0, "combined".into()));
    s.start_at.get_or_insert_with(|| Spanned::new(0..0, "end".into()));
    s.poll_interval.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("1s".into())));
    s.rotate_wait.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("5m".into())));
    s.file_events.get_or_insert_with(|| Spanned::new(0..0, true));
    s.client.get_or_insert_with(|| Spanned::new(0..0, "%h".into()));
    s.trusted_proxies.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
    s.ipv6_prefix.get_or_insert_with(|| Spanned::new(0..0, 64));
    s.max_line_bytes.get_or_insert_with(|| Spanned::new(0..0, 65536));
}

/// Fills the keys a rule left out; `name` when it has none.
pub(super) fn fill_rule(r: &mut RawRule, name: String) {
    r.name.get_or_insert_with(|| Spanned::new(0..0, name));
    r.field.get_or_insert_with(|| Spanned::new(0..0, "request".into()));
    if r.contains.is_none() && r.regex.is_none() && r.status.is_none() && r.method.is_none() {
        r.contains = sp("today_download".into());
    }
    r.threshold.get_or_insert_with(|| Spanned::new(0..0, 10));
    r.window.get_or_insert_with(|| Spanned::new(0..0, RawDuration::Text("10m".into())));
    let window = r.window.clone();
    r.cooldown.get_or_insert_with(|| window.expect("filled above"));
    r.key.get_or_insert_with(|| Spanned::new(0..0, Names::One("client".into())));
    r.allow.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
    r.normalize.get_or_insert_with(|| Spanned::new(0..0, true));
    r.ignore_case.get_or_insert_with(|| Spanned::new(0..0, false));
    let max = crate::rules::MAX_CLIENTS as i64;
    r.max_clients.get_or_insert_with(|| Spanned::new(0..0, max));
    r.message.get_or_insert_with(|| {
        Spanned::new(
            0..0,
            "SUSPICIOUS ACTIVITY: IP {client} accessed {target} {count} times in {window}".into(),
        )
    });
}

/// The value of a filled field.
pub(super) fn get<T>(v: &S<T>) -> &Spanned<T> {
    v.as_ref().expect("filled by fill_defaults")
}
