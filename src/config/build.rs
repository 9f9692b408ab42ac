//! Building the domain objects from the schema: every value checked, every
//! error naming the file, the line and the key, and saying what is allowed.
//! Checks that need the file system (a program exists, a time zone is
//! known) go through [`Host`], so the rest is pure.

use super::schema::{
    self, Names, RawAllow, RawCluster, RawConfig, RawDuration, RawHttp, RawInclude, RawOutput,
    RawRedis, RawRule, RawSource, RawSources, S, get,
};
use super::{Config, ConfigError, Cx, Host, SourceConfig};
use crate::alert::MESSAGE_VARS;
use crate::farm::FarmSettings;
use crate::follow::{PathSpec, StartAt};
use crate::observe::HttpSettings;
use crate::output::exec::ExecSettings;
use crate::output::syslog::{self, FACILITIES, SEVERITIES, SyslogSettings};
use crate::output::webhook::{self, WebhookSettings};
use crate::output::{self, OutputConfig, OutputKind};
use crate::parse::client::{AddrSet, Cidr};
use crate::parse::{ClientSource, Field, Format};
use crate::rules::{FieldSel, KeyPart, Rule, RuleDef, WindowSpec};
use crate::template::{Mode, Template};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The configuration the schema describes (`file` and `effective` left
/// for the caller).
pub(super) fn config(cx: &Cx, raw: RawConfig, host: &dyn Host) -> Result<Config, ConfigError> {
    let sources = validate_sources(cx, &raw.source, host)?;
    let rules = raw
        .rule
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| validate_rule(cx, r, &format!("rule[{}]", i + 1), &sources))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_names(cx, raw.rule.as_deref().unwrap_or_default())?;
    let outputs = raw
        .output
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, o)| validate_output(cx, o, &format!("output[{}]", i + 1), host, &sources))
        .collect::<Result<Vec<_>, _>>()?;
    let allow = allow_list(cx, &raw.allow, host)?;
    let cleanup = get(&raw.state.cleanup_interval);
    let cleanup_interval = duration(cx, cleanup, "state.cleanup_interval")?;
    if cleanup_interval.is_zero() {
        return Err(cx.err(cleanup, "state.cleanup_interval", "must be longer than 0 seconds"));
    }
    let threads = get(&raw.engine.threads);
    let n: usize = in_range(cx, threads, "engine.threads", 0, 1024, " (0: one per core)")?;
    let cluster = raw.cluster.as_ref().map(|c| validate_cluster(cx, c, host)).transpose()?;
    let http = raw.http.as_ref().map(|h| validate_http(cx, h)).transpose()?;
    Ok(Config {
        file: None,
        sources,
        rules,
        allow,
        outputs,
        state_dir: PathBuf::from(get(&raw.state.dir).get_ref()),
        cleanup_interval,
        threads: n,
        cluster,
        http,
        included: Vec::new(),
        effective: String::new(),
    })
}

/// `[http]`: an address to listen on, and a token wherever others than
/// this machine's users could reach it.
fn validate_http(cx: &Cx, h: &RawHttp) -> Result<HttpSettings, ConfigError> {
    let l = get(&h.listen);
    let listen: std::net::SocketAddr = l.get_ref().parse().map_err(|_| {
        cx.err(
            l,
            "http.listen",
            format!(
                "{:?} is not an address and port: write \"127.0.0.1:9745\" or \"[::1]:9745\"",
                l.get_ref()
            ),
        )
    })?;
    let token = match &h.token {
        Some(t) => {
            let v = t.get_ref();
            if v.is_empty()
                || v.len() > 256
                || v.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(cx.err(t, "http.token", "must be 1 to 256 characters without spaces"));
            }
            Some(v.clone())
        }
        None if !listen.ip().is_loopback() => {
            let msg = format!(
                "a token is required when http.listen is not a loopback address ({listen}): anyone who reaches it would see clients and alerts; set http.token"
            );
            return Err(cx.err(l, "http.token", msg));
        }
        None => None,
    };
    let u = get(&h.unhealthy_after);
    let unhealthy_after = duration(cx, u, "http.unhealthy_after")?;
    Ok(HttpSettings { listen, token, unhealthy_after })
}

/// An included file's rules (validated against its own text, so errors
/// name it and its lines; unnamed ones are named after the file) and
/// allow-list entries, added to `cfg`.
pub(super) fn include(
    cx: &Cx,
    path: &std::path::Path,
    mut inc: RawInclude,
    cfg: &mut Config,
    host: &dyn Host,
) -> Result<(), ConfigError> {
    let stem = path.file_stem().map_or("included".into(), |s| s.to_string_lossy().into_owned());
    let rules = inc.rule.as_deref_mut().unwrap_or_default();
    let n = rules.len();
    for (i, r) in rules.iter_mut().enumerate() {
        let name = if n == 1 { stem.clone() } else { format!("{stem}-{}", i + 1) };
        schema::fill_rule(r, name);
        let rule = validate_rule(cx, r, &format!("rule[{}]", i + 1), &cfg.sources)?;
        if cfg.rules.iter().any(|o| o.name == rule.name) {
            let msg = format!("{:?} is used by an earlier rule; names must be unique", rule.name);
            return Err(cx.err(get(&r.name), &format!("rule[{}].name", i + 1), msg));
        }
        cfg.rules.push(rule);
    }
    if let Some(mut a) = inc.allow {
        a.clients.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
        a.files.get_or_insert_with(|| Spanned::new(0..0, Vec::new()));
        let blocks = allow_blocks(cx, &a, host)?;
        cfg.allow = std::mem::take(&mut cfg.allow).with(blocks);
    }
    cfg.included.push((path.to_path_buf(), n));
    Ok(())
}

/// `[cluster]`: Redis URLs the client library accepts, and a node name and
/// key prefix that cannot break the key layout (no `{`, `}`, `:` or space).
fn validate_cluster(cx: &Cx, c: &RawCluster, host: &dyn Host) -> Result<FarmSettings, ConfigError> {
    let Some(redis) = &c.redis else {
        return Err(cx.err_at(cx.table_line("cluster"), "cluster.redis", "is required: the farm's Redis URL, such as \"redis://127.0.0.1:6379/0\", or a Redis Cluster's seed nodes".into()));
    };
    let urls = match redis.get_ref() {
        RawRedis::One(u) => vec![u.clone()],
        RawRedis::Many(v) => v.clone(),
    };
    if urls.is_empty() {
        return Err(cx.err(redis, "cluster.redis", "lists no URL"));
    }
    for u in &urls {
        if let Err(e) = redis::IntoConnectionInfo::into_connection_info(u.as_str()) {
            let shown = crate::farm::redacted(u);
            return Err(cx.err(redis, "cluster.redis", format!("{shown:?} is not a Redis URL ({e}); write redis://[:password@]host[:port][/db], rediss:// for TLS")));
        }
    }
    let name = |v: &Spanned<String>, key: &str| {
        let t = v.get_ref();
        let bad = |ch: char| ch.is_whitespace() || ch.is_control() || "{}:".contains(ch);
        if t.is_empty() || t.len() > 64 || t.chars().any(bad) {
            return Err(cx.err(
                v,
                key,
                format!("{t:?}: must be 1 to 64 characters without spaces, '{{', '}}' or ':'"),
            ));
        }
        Ok(t.clone())
    };
    let node = name(get(&c.node), "cluster.node")?;
    let prefix = name(get(&c.prefix), "cluster.prefix")?;
    let t = get(&c.timeout);
    let timeout = duration(cx, t, "cluster.timeout")?;
    if timeout < Duration::from_millis(1) || timeout > Duration::from_secs(60) {
        return Err(cx.err(t, "cluster.timeout", "must be 1ms to 60s"));
    }
    Ok(FarmSettings { redis: urls, node, prefix, timeout, host: host.host_name() })
}

/// The sources: names unique, paths apart, one IPv6 prefix (a rule counts
/// a client across its sources under one key), and one slot per other
/// header in all their formats.
fn validate_sources(
    cx: &Cx,
    raw: &RawSources,
    host: &dyn Host,
) -> Result<Vec<SourceConfig>, ConfigError> {
    let mut slots = Vec::new();
    let mut out: Vec<SourceConfig> = Vec::new();
    for (at, s) in raw.each() {
        let src = validate_source(cx, s, &at, host, &mut slots)?;
        let key = |k: &str| format!("{at}.{k}");
        if let Some(o) = out.iter().find(|o| o.name == src.name) {
            let msg = format!("{:?} names an earlier source too; names must be unique", o.name);
            return Err(cx.err(get(&s.name), &key("name"), msg));
        }
        if let Some(o) = out.iter().find(|o| o.path == src.path) {
            let msg = format!("is source {:?}'s path too; each source reads its own files", o.name);
            return Err(cx.err(get(&s.path), &key("path"), msg));
        }
        if let Some(o) = out.first().filter(|o| o.ipv6_prefix != src.ipv6_prefix) {
            let msg = format!(
                "must be the same in every source (source {:?} has {}): a rule counts a client \
                 across its sources under one key",
                o.name, o.ipv6_prefix
            );
            return Err(cx.err(get(&s.ipv6_prefix), &key("ipv6_prefix"), msg));
        }
        out.push(src);
    }
    if out.len() > MAX_SOURCES {
        let msg = format!("at most {MAX_SOURCES} sources");
        return Err(cx.err_at(cx.table_line("[source]"), "source", msg));
    }
    Ok(out)
}

/// Sources a configuration may have (a rule's sources are a bit mask).
pub const MAX_SOURCES: usize = 64;

/// A source's name: `default` for a lone `[source]`, required in
/// `[[source]]` blocks; letters, digits, `-`, `_` and `.`.
fn source_name(cx: &Cx, s: &RawSource, at: &str) -> Result<String, ConfigError> {
    let Some(n) = &s.name else {
        let msg = "is required in [[source]] blocks: a name rules can list in `sources`";
        return Err(cx.err(get(&s.path), &format!("{at}.name"), msg));
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if n.get_ref().is_empty() || !n.get_ref().chars().all(ok) {
        let msg = format!("{:?} is not a name: use letters, digits, -, _ and .", n.get_ref());
        return Err(cx.err(n, &format!("{at}.name"), msg));
    }
    Ok(n.get_ref().clone())
}

/// One source (`at`: `source` or `source[i]`), other headers' slots shared
/// through `slots`.
fn validate_source(
    cx: &Cx,
    s: &RawSource,
    at: &str,
    host: &dyn Host,
    slots: &mut Vec<String>,
) -> Result<SourceConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let name = source_name(cx, s, at)?;
    let tz = get(&s.timezone);
    let zone_name = tz.get_ref();
    let zone = host.zone(zone_name).ok_or_else(|| {
        cx.err(tz, &key("timezone"), format!("unknown time zone {zone_name:?}: use \"local\", \"UTC\" or an IANA name such as \"Europe/Berlin\""))
    })?;
    let (peer, header) = source_client(cx, s, at)?;
    let trusted = trusted_proxies(cx, s, at)?;
    let fmt = get(&s.format);
    let format = Format::from_spec_sharing(fmt.get_ref(), header.as_deref(), slots)
        .map_err(|m| cx.err(fmt, &key("format"), m))?;
    if let Some(f) = peer
        && format.logs(f) == Some(false)
    {
        let (d, other) = if f == Field::Addr { ("%a", "%h") } else { ("%h", "%a") };
        let msg =
            format!("is {d:?}, but {at}.format logs no {d}: use {other:?} or a format with {d}");
        return Err(cx.err(get(&s.client), &key("client"), msg));
    }
    let poll = get(&s.poll_interval);
    let poll_interval = duration(cx, poll, &key("poll_interval"))?;
    if poll_interval.is_zero() {
        return Err(cx.err(poll, &key("poll_interval"), "must be longer than 0 seconds"));
    }
    let path = get(&s.path);
    let spec = PathSpec::parse(path.get_ref())
        .map_err(|m| cx.err(path, &key("path"), format!("{:?} {m}", path.get_ref())))?;
    Ok(SourceConfig {
        name,
        path: path.get_ref().clone(),
        zone,
        format,
        start_at: start_at(cx, s, at)?,
        poll_interval,
        rotate_wait: duration(cx, get(&s.rotate_wait), &key("rotate_wait"))?,
        spec,
        file_events: *get(&s.file_events).get_ref(),
        client: ClientSource { peer, header, trusted },
        ipv6_prefix: in_range(
            cx,
            get(&s.ipv6_prefix),
            &key("ipv6_prefix"),
            1,
            128,
            " (128 = every address apart; 64 groups a /64)",
        )?,
        max_line_bytes: in_range(
            cx,
            get(&s.max_line_bytes),
            &key("max_line_bytes"),
            256,
            crate::source::MAX_LINE_LIMIT,
            "",
        )?,
    })
}

/// A source's `client`: the access-log field of the connecting client (a
/// default `%h` takes `%a` where only that is logged; a written one is
/// strict), or the header that carries it.
fn source_client(
    cx: &Cx,
    s: &RawSource,
    at: &str,
) -> Result<(Option<Field>, Option<String>), ConfigError> {
    let client = get(&s.client);
    let explicit = !client.span().is_empty();
    // An nginx variable, for a source with an nginx log_format.
    let translated = crate::parse::nginx::client(client.get_ref());
    match translated.as_deref().unwrap_or(client.get_ref()) {
        "%h" => Ok((explicit.then_some(Field::Host), None)),
        "%a" => Ok((Some(Field::Addr), None)),
        c => match c.strip_prefix("%{").and_then(|r| r.strip_suffix("}i")) {
            Some(h) if !h.is_empty() => Ok((None, Some(h.to_string()))),
            _ => Err(cx.err(client, &format!("{at}.client"), format!("{c:?} is not allowed: use \"%h\", \"%a\" or a header such as \"%{{X-Forwarded-For}}i\" (nginx: \"$remote_addr\" or \"$http_x_forwarded_for\")"))),
        },
    }
}

/// A source's `trusted_proxies`: addresses and blocks.
fn trusted_proxies(cx: &Cx, s: &RawSource, at: &str) -> Result<Vec<Cidr>, ConfigError> {
    let proxies = get(&s.trusted_proxies);
    let parse = |p: &String| {
        let everyone = |_| {
            format!(
                "{p:?} trusts every address: the client would be the header's first address, which the client writes itself (a new one each request evades every rule). List your proxies' addresses or blocks"
            )
        };
        block(p, everyone).map_err(|m| cx.err(proxies, &format!("{at}.trusted_proxies"), m))
    };
    proxies.get_ref().iter().map(parse).collect()
}

/// A source's `start_at`.
fn start_at(cx: &Cx, s: &RawSource, at: &str) -> Result<StartAt, ConfigError> {
    let start = get(&s.start_at);
    match start.get_ref().as_str() {
        "end" => Ok(StartAt::End),
        "beginning" => Ok(StartAt::Beginning),
        o => {
            let msg = format!("{o:?} is not allowed: use \"end\" or \"beginning\"");
            Err(cx.err(start, &format!("{at}.start_at"), msg))
        }
    }
}

/// A whole number at `key` that must be `min` to `max` (`why` follows the
/// range in the message).
fn in_range<T: TryFrom<i64> + PartialOrd + std::fmt::Display + Copy>(
    cx: &Cx,
    v: &Spanned<i64>,
    key: &str,
    min: T,
    max: T,
    why: &str,
) -> Result<T, ConfigError> {
    T::try_from(*v.get_ref())
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| cx.err(v, key, format!("must be {min} to {max}{why}")))
}

/// Rule `r` (at `at`) for lines of the configured `sources`.
fn validate_rule(
    cx: &Cx,
    r: &RawRule,
    at: &str,
    sources: &[SourceConfig],
) -> Result<Rule, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let name = get(&r.name);
    if name.get_ref().is_empty() || name.get_ref().chars().any(|c| c.is_control()) {
        return Err(cx.err(name, &key("name"), "must be non-empty printable text"));
    }
    let (mask, reads) = rule_sources(cx, r, &key("sources"), sources)?;
    let format = &Reads(reads);
    let f = get(&r.field);
    let field = field_sel(f.get_ref(), format).map_err(|m| cx.err(f, &key("field"), m))?;
    if let Some(c) = &r.contains
        && c.get_ref().is_empty()
    {
        return Err(cx.err(c, &key("contains"), "must not be empty"));
    }
    let (status, methods) = rule_filters(cx, r, at)?;
    let m = get(&r.message);
    let headers = header_placeholders(sources);
    let vars: Vec<&str> =
        MESSAGE_VARS.iter().copied().chain(headers.iter().map(String::as_str)).collect();
    let message = Template::parse(m.get_ref(), &vars, Mode::Text)
        .map_err(|e| cx.err(m, &key("message"), e))?;
    let def = RuleDef {
        name: name.get_ref().clone(),
        field,
        contains: r.contains.as_ref().map(|c| c.get_ref().clone()),
        regex: r.regex.as_ref().map(|re| re.get_ref().clone()),
        status,
        methods,
        spec: rule_spec(cx, r, at)?,
        message,
        allow: addr_set(cx, get(&r.allow), &key("allow"))?,
        normalize: *get(&r.normalize).get_ref(),
        ignore_case: *get(&r.ignore_case).get_ref(),
        max_clients: in_range(cx, get(&r.max_clients), &key("max_clients"), 1, 1_000_000_000, "")?,
        key: key_parts(cx, get(&r.key), &key("key"), format)?,
        sources: mask,
        distinct: match &r.distinct {
            Some(d) => {
                Some(text_field(d.get_ref(), format).map_err(|m| cx.err(d, &key("distinct"), m))?)
            }
            None => None,
        },
    };
    Rule::new(def).map_err(|m| match &r.regex {
        Some(re) => cx.err(re, &key("regex"), m),
        None => cx.err_at(0, &key("regex"), m),
    })
}

/// Threshold, window and cooldown of a rule.
fn rule_spec(cx: &Cx, r: &RawRule, at: &str) -> Result<WindowSpec, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let t = get(&r.threshold);
    let threshold = u32::try_from(*t.get_ref()).ok().filter(|t| *t >= 1).ok_or_else(|| {
        cx.err(
            t,
            &key("threshold"),
            format!("must be from 1 to {} (got {})", u32::MAX, t.get_ref()),
        )
    })?;
    let w = get(&r.window);
    let window = secs_u32(cx, w, &key("window"))?;
    if window == 0 {
        return Err(cx.err(w, &key("window"), "must be longer than 0 seconds"));
    }
    let cooldown = secs_u32(cx, get(&r.cooldown), &key("cooldown"))?;
    Ok(WindowSpec { threshold, window, cooldown, distinct: r.distinct.is_some() })
}

/// The status and method filters of a rule.
fn rule_filters(cx: &Cx, r: &RawRule, at: &str) -> Result<(Vec<u16>, Vec<Vec<u8>>), ConfigError> {
    let status = match &r.status {
        Some(s) => s
            .get_ref()
            .iter()
            .map(|v| u16::try_from(*v).ok().filter(|v| (100..=999).contains(v)))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(|| {
                cx.err(s, &format!("{at}.status"), "must list HTTP status codes (100 to 999)")
            })?,
        None => Vec::new(),
    };
    let methods = r.method.as_ref().map_or(Vec::new(), |m| {
        m.get_ref().iter().map(|s| s.to_ascii_uppercase().into_bytes()).collect()
    });
    Ok((status, methods))
}

/// A list of addresses and blocks; an error names the entry.
fn addr_set(cx: &Cx, v: &Spanned<Vec<String>>, key: &str) -> Result<AddrSet, ConfigError> {
    Ok(AddrSet::new(addr_set_entries(cx, v, key)?))
}

/// An address or block (`10.0.0.0/8`); an error for text that is none, or,
/// said by `everyone` (given whose addresses), for a block that holds every
/// address of its kind: a typo such as `10.0.0.0/0` for `/8` in an
/// allow-list, or a `trusted_proxies` entry, that no one means.
fn block(entry: &str, everyone: impl FnOnce(&'static str) -> String) -> Result<Cidr, String> {
    let block = Cidr::parse(entry).ok_or_else(|| {
        format!(
            "{entry:?} is not an address or block such as \"192.0.2.10\", \"10.0.0.0/8\" or \"2001:db8::/32\""
        )
    })?;
    match block.everyone() {
        Some(whose) => Err(everyone(whose)),
        None => Ok(block),
    }
}

/// An allow-list entry as a block (see [`block`]).
fn allow_block(entry: &str) -> Result<Cidr, String> {
    block(entry, |whose| {
        format!(
            "{entry:?} holds every {whose} address: no client of it would ever be counted. Give the block's real length (\"10.0.0.0/8\"), or remove the rule instead"
        )
    })
}

/// The global allow-list: `[allow] clients` and the entries of its files
/// (one address or block per line, `#` comments); an error in a file names
/// the file, the line and the entry.
fn allow_list(cx: &Cx, a: &RawAllow, host: &dyn Host) -> Result<AddrSet, ConfigError> {
    Ok(AddrSet::new(allow_blocks(cx, a, host)?))
}

/// The blocks of an `[allow]` table.
fn allow_blocks(cx: &Cx, a: &RawAllow, host: &dyn Host) -> Result<Vec<Cidr>, ConfigError> {
    let mut blocks: Vec<Cidr> = Vec::new();
    let clients = get(&a.clients);
    blocks.extend(addr_set_entries(cx, clients, "allow.clients")?);
    let files = get(&a.files);
    for pattern in files.get_ref() {
        let found = host.files(pattern).map_err(|m| cx.err(files, "allow.files", m))?;
        for (path, text) in found {
            for (n, raw) in text.lines().enumerate() {
                let entry = raw.split('#').next().unwrap_or("").trim();
                if entry.is_empty() {
                    continue;
                }
                let block = allow_block(entry).map_err(|message| ConfigError::Invalid {
                    file: path.display().to_string(),
                    line: n + 1,
                    key: "allow: ".into(),
                    message,
                })?;
                blocks.push(block);
            }
        }
    }
    Ok(blocks)
}

fn addr_set_entries(
    cx: &Cx,
    v: &Spanned<Vec<String>>,
    key: &str,
) -> Result<Vec<Cidr>, ConfigError> {
    v.get_ref().iter().map(|e| allow_block(e.trim()).map_err(|m| cx.err(v, key, m))).collect()
}

/// `{header:Name}` for each other header the sources' formats log, in
/// slot order: message placeholders after [`MESSAGE_VARS`].
pub(super) fn header_placeholders(sources: &[SourceConfig]) -> Vec<String> {
    let mut slots: Vec<Option<&str>> = vec![None; crate::parse::MAX_HEADERS];
    for s in sources {
        if let Format::Access(lf, _) = &s.format {
            for (name, slot) in lf.headers() {
                if let Some(k) = slot {
                    slots[usize::from(*k)] = Some(name.as_str());
                }
            }
        }
    }
    slots.into_iter().map_while(|n| Some(format!("header:{}", n?))).collect()
}

/// The sources a rule reads: all, or those its `sources` names (`at`), as
/// a bit mask (`None`: all) and the sources themselves.
fn rule_sources<'s>(
    cx: &Cx,
    r: &RawRule,
    at: &str,
    sources: &'s [SourceConfig],
) -> Result<(Option<u64>, Vec<&'s SourceConfig>), ConfigError> {
    let Some(names) = &r.sources else { return Ok((None, sources.iter().collect())) };
    if names.get_ref().is_empty() {
        return Err(cx.err(names, at, "lists no source; leave it out to read every source"));
    }
    let mut mask = 0u64;
    for n in names.get_ref() {
        let i = sources.iter().position(|s| s.name == *n).ok_or_else(|| {
            let known: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
            cx.err(
                names,
                at,
                format!("{n:?} is not a source; the sources are {}", known.join(", ")),
            )
        })?;
        mask |= 1 << i;
    }
    let reads = sources.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1);
    Ok((Some(mask), reads.map(|(_, s)| s).collect()))
}

/// The formats of the sources a rule reads, for checking its fields.
struct Reads<'s>(Vec<&'s SourceConfig>);

impl Reads<'_> {
    /// `f` for each source's format and the name of its `format` key for
    /// messages; the first error, or the answer (the same for all: other
    /// headers have one slot in all formats).
    fn each<T>(&self, f: impl Fn(&Format, &str) -> Result<T, String>) -> Result<T, String> {
        let mut answer = Err("reads no source".to_string());
        for s in &self.0 {
            let label = match s.name.as_str() {
                "default" => "source.format".to_string(),
                n => format!("source {n:?}'s format"),
            };
            answer = Ok(f(&s.format, &label)?);
        }
        answer
    }
}

/// The field named `name` (`path`, `header:X-Api-Key`, …) in lines of the
/// formats; the error says what is wrong and which formats carry it.
fn field_sel(name: &str, formats: &Reads<'_>) -> Result<FieldSel, String> {
    formats.each(|format, label| field_in(name, format, label))
}

/// The field named `name` in lines of `format` (called `label`).
fn field_in(name: &str, format: &Format, label: &str) -> Result<FieldSel, String> {
    let logged = |f: FieldSel, field: Field, what: &str, carriers: &str| match format.logs(field) {
        Some(false) => Err(format!("{name:?}: {label} logs no {what}; {carriers} do")),
        _ => Ok(f),
    };
    if let Some(header) = name.strip_prefix("header:") {
        return header_sel(name, header, format, label);
    }
    match FieldSel::from_name(name) {
        Some(f @ FieldSel::Vhost) => {
            logged(f, Field::VHost, "virtual host", "vhost_combined and formats with %v or %V")
        }
        Some(f @ FieldSel::User) => {
            logged(f, Field::User, "user", "common, combined, vhost_combined and formats with %u")
        }
        Some(f @ FieldSel::Host) => {
            logged(f, Field::HostHeader, "Host header", "formats with %{Host}i")
        }
        Some(f) => Ok(f),
        None => Err(format!(
            "{name:?} is not a field: use request, method, path, query, status, user_agent, \
             referer, vhost, user, host, header:Name (a header the format logs as %{{Name}}i) \
             or line"
        )),
    }
}

/// The field of header `header` (from field `name`, `header:…`).
fn header_sel(name: &str, header: &str, format: &Format, label: &str) -> Result<FieldSel, String> {
    let known = [("User-Agent", "user_agent"), ("Referer", "referer"), ("Host", "host")];
    if let Some((_, f)) = known.iter().find(|(h, _)| h.eq_ignore_ascii_case(header)) {
        return field_in(f, format, label);
    }
    let Format::Access(lf, _) = format else {
        return Err(format!("{name:?}: only access log formats log headers ({label} is not one)"));
    };
    if let Some(slot) = lf.header_slot(header) {
        return Ok(FieldSel::Header(slot));
    }
    Err(match lf.headers().iter().any(|h| h.0.eq_ignore_ascii_case(header)) {
        true => format!(
            "{name:?}: rules can read {} headers besides User-Agent, Referer and Host, the \
             first the formats log ({}); move it before the others",
            crate::parse::MAX_HEADERS,
            lf.headers()
                .iter()
                .filter(|h| h.1.is_some())
                .map(|h| h.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        false => format!(
            "{name:?}: {label} logs no {header} header (the client header does not count); \
             add \"%{{{header}}}i\" to the format"
        ),
    })
}

/// A field a key or a distinct count is made of: not `status` or `line`.
fn text_field(name: &str, format: &Reads<'_>) -> Result<FieldSel, String> {
    match field_sel(name, format)? {
        FieldSel::Status | FieldSel::Line => Err(format!(
            "{name:?} cannot be used here: use a text field such as path, user or vhost"
        )),
        f => Ok(f),
    }
}

/// The parts of a rule's `key`.
fn key_parts(
    cx: &Cx,
    k: &Spanned<Names>,
    at: &str,
    format: &Reads<'_>,
) -> Result<Vec<KeyPart>, ConfigError> {
    let names = k.get_ref().list();
    if names.is_empty() {
        return Err(cx.err(k, at, "must name at least one field"));
    }
    let part = |n: &str| match n {
        "client" => Ok(KeyPart::Client),
        n => text_field(n, format).map(KeyPart::Field),
    };
    let parts = names.into_iter().map(part).collect::<Result<Vec<_>, _>>();
    parts.map_err(|m| cx.err(k, at, m))
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

fn validate_output(
    cx: &Cx,
    o: &RawOutput,
    at: &str,
    host: &dyn Host,
    sources: &[SourceConfig],
) -> Result<OutputConfig, ConfigError> {
    let kind = get(&o.kind);
    let kind = match kind.get_ref().as_str() {
        "syslog" => validate_syslog(cx, o, at)?,
        "jsonl" => validate_jsonl(cx, o, at, sources)?,
        "exec" => validate_exec(cx, o, at, host)?,
        "webhook" => validate_webhook(cx, o, at)?,
        other => {
            let msg = format!(
                "{other:?} is not an output type: use \"syslog\", \"jsonl\", \"exec\" or \"webhook\""
            );
            return Err(cx.err(kind, &format!("{at}.type"), msg));
        }
    };
    let max_queued =
        in_range(cx, get(&o.max_queued), &format!("{at}.max_queued"), 1, 10_000_000, "")?;
    let rules = match &o.rules {
        Some(r) if r.get_ref().is_empty() => {
            let msg =
                "lists no rule: leave it out for every rule's alerts, or name rules (\"login-*\")";
            return Err(cx.err(r, &format!("{at}.rules"), msg));
        }
        Some(r) => Some(r.get_ref().clone()),
        None => None,
    };
    Ok(OutputConfig { kind, max_queued, rules })
}

/// Each output's `rules`, as written: checked by [`check_output_rules`] once
/// the included files' rules are known.
pub(super) fn output_rules(raw: &RawConfig) -> Vec<S<Vec<String>>> {
    raw.output.as_deref().unwrap_or_default().iter().map(|o| o.rules.clone()).collect()
}

/// Every name or pattern in an output's `rules` matches a rule: a typo
/// would leave the output without the alerts it is for, silently.
pub(super) fn check_output_rules(
    cx: &Cx,
    written: &[S<Vec<String>>],
    cfg: &Config,
) -> Result<(), ConfigError> {
    let names: Vec<&str> = cfg.rules.iter().map(|r| r.name.as_str()).collect();
    for (i, r) in written.iter().enumerate() {
        let Some(r) = r else { continue };
        for p in r.get_ref() {
            let entry = output::RuleEntry::new(p);
            if !names.iter().any(|n| entry.takes(n)) {
                let glob = entry
                    .glob_error()
                    .map_or(String::new(), |e| format!(", nor is it a pattern ({e})"));
                let msg = format!("{p:?} names no rule{glob}; the rules are {}", names.join(", "));
                return Err(cx.err(r, &format!("output[{}].rules", i + 1), msg));
            }
        }
    }
    Ok(())
}

fn validate_syslog(cx: &Cx, o: &RawOutput, at: &str) -> Result<OutputKind, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    check_keys(cx, o, at, "syslog")?;
    let fac = get(&o.facility);
    // The old script's "user.error" spelling carries the severity too.
    let (fac_name, sev_from_fac) = match fac.get_ref().split_once('.') {
        Some((f, s)) => (f, Some(s)),
        None => (fac.get_ref().as_str(), None),
    };
    let facility = syslog::lookup(&FACILITIES, fac_name).ok_or_else(|| {
        let names: Vec<&str> = FACILITIES.iter().map(|f| f.0).collect();
        cx.err(
            fac,
            &key("facility"),
            format!("{fac_name:?} is not a facility: use one of {}", names.join(", ")),
        )
    })?;
    let sev = get(&o.severity);
    // The severity comes from where it is written: `severity`, else `facility`.
    let (sev_name, sev_at, sev_key) = match (sev_from_fac, sev.span().is_empty()) {
        (Some(s), true) => (s, fac.span(), "facility"),
        _ => (sev.get_ref().as_str(), sev.span(), "severity"),
    };
    let severity = syslog::lookup(&SEVERITIES, sev_name).ok_or_else(|| {
        cx.err(&Spanned::new(sev_at, ()), &key(sev_key), format!("{sev_name:?} is not a severity: use emerg, alert, crit, err, warning, notice, info or debug"))
    })?;
    let tag = get(&o.tag);
    let t = tag.get_ref();
    if !syslog::valid_tag(t) {
        return Err(cx.err(tag, &key("tag"), format!("{t:?} would be cut or mangled by syslog: use 1 to 32 printable ASCII characters without spaces")));
    }
    let target = get(&o.target);
    let tg = target.get_ref();
    if !syslog::valid_target(tg) {
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
    Ok(OutputKind::Syslog(SyslogSettings {
        target: tg.clone(),
        format: format.get_ref().clone(),
        facility,
        severity,
        tag: t.clone(),
        pid: *get(&o.pid).get_ref(),
    }))
}

/// The keys each output type takes (besides `type`).
const OUTPUT_KEYS: [(&str, &[&str]); 4] = [
    ("syslog", &["target", "format", "facility", "severity", "tag", "pid"]),
    ("jsonl", &["path"]),
    ("exec", &["command", "timeout", "max_concurrent"]),
    ("webhook", &["url", "timeout", "body", "headers"]),
];

/// Rejects keys that belong to another output type.
fn check_keys(cx: &Cx, o: &RawOutput, at: &str, kind: &str) -> Result<(), ConfigError> {
    let present = [
        ("target", o.target.as_ref().map(Spanned::span)),
        ("format", o.format.as_ref().map(Spanned::span)),
        ("facility", o.facility.as_ref().map(Spanned::span)),
        ("severity", o.severity.as_ref().map(Spanned::span)),
        ("tag", o.tag.as_ref().map(Spanned::span)),
        ("pid", o.pid.as_ref().map(Spanned::span)),
        ("path", o.path.as_ref().map(Spanned::span)),
        ("command", o.command.as_ref().map(Spanned::span)),
        ("timeout", o.timeout.as_ref().map(Spanned::span)),
        ("max_concurrent", o.max_concurrent.as_ref().map(Spanned::span)),
        ("url", o.url.as_ref().map(Spanned::span)),
        ("body", o.body.as_ref().map(Spanned::span)),
        ("headers", o.headers.as_ref().map(Spanned::span)),
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

fn validate_webhook(cx: &Cx, o: &RawOutput, at: &str) -> Result<OutputKind, ConfigError> {
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
    if !webhook::is_url(u) {
        let m = format!(
            "{u:?} is not an http:// or https:// URL (a host, no spaces, a port up to 65535)"
        );
        return Err(cx.err(url, &key("url"), m));
    }
    let timeout = match &o.timeout {
        Some(t) => duration(cx, t, &key("timeout"))?,
        None => Duration::from_secs(10),
    };
    let headers: Vec<(String, String)> = match &o.headers {
        Some(h) => h
            .get_ref()
            .iter()
            .map(|(k, v)| webhook::parse_header(k, v).map_err(|m| cx.err(h, &key("headers"), m)))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let json =
        webhook::content_type(&headers).is_none_or(|v| v.to_ascii_lowercase().contains("json"));
    let body = match &o.body {
        Some(b) => {
            let t = webhook::parse_body(b.get_ref(), json);
            Some(t.map_err(|m| cx.err(b, &key("body"), m))?)
        }
        None => None,
    };
    Ok(OutputKind::Webhook(WebhookSettings { url: u.clone(), timeout, body, headers }))
}

fn validate_exec(
    cx: &Cx,
    o: &RawOutput,
    at: &str,
    host: &dyn Host,
) -> Result<OutputKind, ConfigError> {
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
    if !host.program_exists(program) {
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
        Some(m) => in_range(cx, m, &key("max_concurrent"), 1, 256, "")?,
        None => 4,
    };
    let command = cmd.get_ref().clone();
    Ok(OutputKind::Exec(ExecSettings { command, timeout, max_concurrent }))
}

/// A jsonl output's file: not one a source follows, where its alerts would
/// be read back as log lines.
fn validate_jsonl(
    cx: &Cx,
    o: &RawOutput,
    at: &str,
    sources: &[SourceConfig],
) -> Result<OutputKind, ConfigError> {
    check_keys(cx, o, at, "jsonl")?;
    match &o.path {
        Some(p) if !p.get_ref().is_empty() => {
            let path = PathBuf::from(p.get_ref());
            if let Some(s) = sources.iter().find(|s| s.spec.covers(&path)) {
                let msg = format!(
                    "{} is a file source {:?} follows ({}): its alerts would be read back as log lines; put it elsewhere",
                    path.display(),
                    s.name,
                    s.path
                );
                return Err(cx.err(p, &format!("{at}.path"), msg));
            }
            Ok(OutputKind::Jsonl(path))
        }
        Some(p) => Err(cx.err(p, &format!("{at}.path"), "must not be empty")),
        None => Err(cx.err_at(
            0,
            &format!("{at}.path"),
            "is required for a jsonl output (the file alerts are appended to)".into(),
        )),
    }
}

fn duration(cx: &Cx, v: &Spanned<RawDuration>, key: &str) -> Result<Duration, ConfigError> {
    v.get_ref().to_duration().map_err(|m| cx.err(v, key, m))
}

fn secs_u32(cx: &Cx, v: &Spanned<RawDuration>, key: &str) -> Result<u32, ConfigError> {
    let d = duration(cx, v, key)?;
    u32::try_from(d.as_secs()).map_err(|_| cx.err(v, key, "is too long (at most 136 years)"))
}
