//! Configuration: one TOML file, read into the [`schema`]'s serde structs
//! (unknown keys rejected), completed with the built-in defaults, then
//! [`build`]-t into the objects the layers below define. Every error names
//! the file, the line and the key, and says what is allowed. The built-in
//! defaults reproduce the old Python script. The file system is consulted
//! only through [`Host`] ([`host`]).

mod build;
mod host;
mod located;
mod schema;

pub use host::{Host, System};
pub use schema::RawDuration;

use crate::farm::FarmRule;
use crate::follow::{FollowConfig, PathSpec, StartAt};
use crate::output::OutputConfig;
use crate::parse::client::AddrSet;
use crate::parse::time::Zone;
use crate::parse::{ClientSource, Field, Format, Parser};
use crate::pipeline::{Engine, EngineSettings};
use crate::rules::{Rule, RuleSet};
use schema::RawConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The file read when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/logwarden/logwarden.toml";

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
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

/// The log source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Its name (`default` for a lone `[source]`), for rules' `sources`.
    pub name: String,
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
    pub spec: PathSpec,
    /// Use file system events (false: poll every `poll_interval`).
    pub file_events: bool,
    /// Where the client address comes from.
    pub client: ClientSource,
    /// IPv6 clients are grouped by this prefix length (128 = not grouped).
    pub ipv6_prefix: u8,
    /// Longer lines are skipped and counted.
    pub max_line_bytes: usize,
}

impl SourceConfig {
    /// How a line's client is found, in words: the field of the peer (where
    /// the format tells), the header and the trusted proxies, and the IPv6
    /// grouping.
    fn finding_client(&self) -> String {
        let c = &self.client;
        let peer = c.peer.or(match self.format.logs(Field::Addr) {
            Some(true) => Some(Field::Addr),
            Some(false) => Some(Field::Host),
            None => None,
        });
        let header = c.header.as_deref().map(str::to_ascii_lowercase);
        let mut trusted = c.trusted.clone();
        trusted.sort_unstable();
        trusted.dedup();
        format!(
            "peer {peer:?} header {header:?} trusted {trusted:?} ipv6_prefix {}",
            self.ipv6_prefix
        )
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (`None` for the built-in defaults).
    pub file: Option<PathBuf>,
    /// The log sources (at least one), in order.
    pub sources: Vec<SourceConfig>,
    /// Detection rules, in file order.
    pub rules: Vec<Rule>,
    /// Clients no rule counts (`[allow]`).
    pub allow: AddrSet,
    /// Alert outputs.
    pub outputs: Vec<OutputConfig>,
    /// Directory for saved state.
    pub state_dir: PathBuf,
    /// How often keys with nothing left in their window are evicted.
    pub cleanup_interval: Duration,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// The farm's Redis (`[cluster]`), if this node is part of one.
    pub cluster: Option<crate::farm::FarmSettings>,
    /// The HTTP endpoint (`[http]`), if any.
    pub http: Option<crate::observe::HttpSettings>,
    /// The files `include` loaded, in order, with their number of rules.
    pub included: Vec<(PathBuf, usize)>,
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
                let text = std::fs::read_to_string(&p)
                    .map_err(|error| ConfigError::Read { path: p.display().to_string(), error })?;
                Config::parse(&text, Some(&p), ov)
            }
            None => Config::parse("", None, ov),
        }
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: Option<&Path>, ov: &Overrides) -> Result<Config, ConfigError> {
        Config::parse_with(text, file, ov, &System)
    }

    /// Parses configuration text, asking `host` what the file system knows.
    pub fn parse_with(
        text: &str,
        file: Option<&Path>,
        ov: &Overrides,
        host: &dyn Host,
    ) -> Result<Config, ConfigError> {
        let name = file.map_or("built-in defaults".to_string(), |p| p.display().to_string());
        let cx = Cx { file: &name, text };
        let mut raw: RawConfig = cx.toml()?;
        if let Some(dir) = file.and_then(Path::parent) {
            schema::anchor_paths(&mut raw, dir);
        }
        schema::apply_overrides(&mut raw, ov);
        // A rule from the command line replaces the files' rules, included ones too.
        let included = match ov.rule {
            Some(_) => Vec::new(),
            None => read_included(&cx, raw.include.as_ref(), file, host)?,
        };
        // Rules of their own in included files: no built-in default rule.
        if raw.rule.is_none() && included.iter().any(|(_, _, r)| r.rule.is_some()) {
            raw.rule = Some(Vec::new());
        }
        schema::fill_defaults(&mut raw, &host.host_name());
        let effective = schema::effective_toml(&raw);
        let output_rules = build::output_rules(&raw);
        let mut cfg = build::config(&cx, raw, host)?;
        for (path, text, inc) in included {
            let name = path.display().to_string();
            let cx = Cx { file: &name, text: &text };
            build::include(&cx, &path, inc, &mut cfg, host)?;
        }
        // A rule from the command line (`replay`, which uses no outputs)
        // leaves the rules the outputs name out.
        if ov.rule.is_none() {
            build::check_output_rules(&cx, &output_rules, &cfg)?;
        }
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

    /// The line parser source `index`'s settings describe.
    pub fn parser(&self, index: usize) -> Parser {
        let s = &self.sources[index];
        let now = jiff::Timestamp::now().as_second();
        Parser::new(s.format.clone(), s.zone.clone(), now, s.client.clone())
            .with_max_line(s.max_line_bytes)
    }

    /// The index of the source called `name` (`None`: the first); the
    /// error lists the names.
    pub fn source_index(&self, name: Option<&str>) -> Result<usize, String> {
        let Some(name) = name else { return Ok(0) };
        self.sources.iter().position(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
            format!("no source is called {name:?}; the sources are {}", names.join(", "))
        })
    }

    /// The engine this configuration describes.
    pub fn engine(&self) -> Engine {
        let settings = EngineSettings {
            // The same in every source (checked).
            ipv6_prefix: self.sources[0].ipv6_prefix,
            threads: self.worker_threads(),
            cleanup_interval: u32::try_from(self.cleanup_interval.as_secs()).unwrap_or(u32::MAX),
            checkpoints: false,
            peaks: false,
            shard: None,
            since: None,
            until: None,
        };
        let sources =
            (0..self.sources.len()).map(|i| (self.sources[i].name.clone(), self.parser(i)));
        Engine::with_sources(self.rule_set(), sources.collect(), settings)
    }

    /// The rules with the global allow-list.
    pub fn rule_set(&self) -> RuleSet {
        RuleSet::new(self.rules.clone()).with_allow(self.allow.clone())
    }

    /// The rules as a farm's nodes compare them: name, window and what
    /// they count (header fields by their names in the sources' formats).
    pub fn farm_rules(&self) -> Vec<FarmRule> {
        let header = self.header_names();
        let farm_rule = |r: &Rule| FarmRule {
            name: r.name.clone(),
            spec: r.spec,
            matches: r.matching(&header, &self.allow),
            counting: r.counting(&header),
            clients: self.finding_clients(r),
            by_client: r.by_client(),
        };
        self.rules.iter().map(farm_rule).collect()
    }

    /// Each rule as the saved state names it beside its windows: name,
    /// window and what it counts ([`Rule::counting`]).
    pub fn rule_names(&self) -> Vec<crate::state::RuleName> {
        let header = self.header_names();
        let name = |r: &Rule| crate::state::RuleName {
            name: r.name.clone(),
            spec: r.spec,
            counting: r.counting(&header),
        };
        self.rules.iter().map(name).collect()
    }

    /// A header field's name by its slot in the sources' formats.
    fn header_names(&self) -> impl Fn(u8) -> String {
        let names = build::header_placeholders(&self.sources);
        move |k: u8| names.get(usize::from(k)).cloned().unwrap_or_else(|| format!("header#{k}"))
    }

    /// A digest of how the sources `rule` reads find a line's client: each
    /// different way once, so a node without one of the logs another node
    /// reads the same way compares alike.
    fn finding_clients(&self, rule: &Rule) -> String {
        let mut ways: Vec<String> = (self.sources.iter().enumerate())
            .filter(|(i, _)| rule.reads(*i))
            .map(|(_, s)| s.finding_client())
            .collect();
        ways.sort_unstable();
        ways.dedup();
        crate::rules::digest(&ways.join("\n"))
    }

    /// What the follower of source `index` needs.
    pub fn follow(&self, index: usize) -> FollowConfig {
        let s = &self.sources[index];
        FollowConfig {
            spec: s.spec.clone(),
            zone: s.zone.clone(),
            start_at: s.start_at,
            poll_interval: s.poll_interval,
            rotate_wait: s.rotate_wait,
            cleanup_interval: self.cleanup_interval,
            file_events: s.file_events,
        }
    }

    /// The files that two sources' paths match now (a glob over another
    /// source's file, a link to it) where a rule reads both sources: each
    /// source follows the file, so that rule counts its lines twice. Found
    /// by device and inode, as the followers know files.
    pub fn read_twice(&self) -> Vec<ReadTwice> {
        use std::os::unix::fs::MetadataExt;
        let mut first: std::collections::HashMap<(u64, u64), usize> = Default::default();
        let mut twice = Vec::new();
        for i in 0..self.sources.len() {
            for path in self.follow(i).current_files().unwrap_or_default() {
                let Some(md) = std::fs::metadata(&path).ok().filter(|md| md.is_file()) else {
                    continue;
                };
                let j = *first.entry((md.dev(), md.ino())).or_insert(i);
                if j == i {
                    continue;
                }
                let both = self.rules.iter().filter(|r| r.reads(i) && r.reads(j));
                let rules: Vec<String> = both.map(|r| r.name.clone()).collect();
                if !rules.is_empty() {
                    let names = (self.sources[j].name.clone(), self.sources[i].name.clone());
                    twice.push(ReadTwice { path, sources: names, rules });
                }
            }
        }
        twice
    }

    /// Each rule's name, with the bits of the outputs that get its alerts
    /// (an output's `rules`).
    pub fn rule_outputs(&self) -> Vec<(&str, u64)> {
        let names: Vec<&str> = self.rules.iter().map(|r| r.name.as_str()).collect();
        let masks = crate::output::rule_masks(&self.outputs, &names);
        names.into_iter().zip(masks).collect()
    }

    /// The rules whose alerts no output gets, every output's `rules`
    /// leaving them out: counted, and delivered nowhere.
    pub fn rules_without_output(&self) -> Vec<&str> {
        let outputs = self.rule_outputs().into_iter();
        outputs.filter(|(_, m)| *m == 0).map(|(n, _)| n).collect()
    }

    /// The keys whose values are secrets — whoever reads them can post to
    /// the webhook, use the farm's Redis or read the status page — as
    /// `check` hides them: `cluster.redis` with a password, `http.token`, a
    /// webhook's `url` with more than its host, its `headers`.
    pub fn secret_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(c) = &self.cluster
            && c.redis.iter().any(|u| crate::farm::redacted(u) != *u)
        {
            keys.push("cluster.redis".to_string());
        }
        if self.http.as_ref().is_some_and(|h| h.token.is_some()) {
            keys.push("http.token".to_string());
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if let crate::output::OutputKind::Webhook(w) = &o.kind {
                let shown = crate::output::webhook::shown_url(&w.url);
                if shown.trim_end_matches('/') != w.url.trim_end_matches('/') {
                    keys.push(format!("output[{}].url", i + 1));
                }
                if !w.headers.is_empty() {
                    keys.push(format!("output[{}].headers", i + 1));
                }
            }
        }
        keys
    }
}

/// A file two sources follow, for rules that read both (see
/// [`Config::read_twice`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadTwice {
    /// The file, as the later source's path names it.
    pub path: PathBuf,
    /// The earlier source and the later one.
    pub sources: (String, String),
    /// The rules that read both, and count the file's lines twice.
    pub rules: Vec<String>,
}

impl std::fmt::Display for ReadTwice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = &self.sources;
        write!(
            f,
            "{} is followed by both source {a} and source {b}, and rule(s) {} read both: they \
             count its lines twice. Make the sources' paths match different files, or list only \
             one of them in those rules' `sources`",
            self.path.display(),
            self.rules.join(", ")
        )
    }
}

/// Locates errors in the configuration text.
struct Cx<'a> {
    file: &'a str,
    text: &'a str,
}

/// The files `include` names, parsed, in order: (path, text, contents).
/// The configuration file `main` itself is not one of them: a glob beside
/// it (`/etc/logwarden/*.toml`) matches it too, and it is no rule file.
fn read_included(
    cx: &Cx,
    include: Option<&toml::Spanned<Vec<String>>>,
    main: Option<&Path>,
    host: &dyn Host,
) -> Result<Vec<(PathBuf, String, schema::RawInclude)>, ConfigError> {
    let Some(patterns) = include else { return Ok(Vec::new()) };
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let mut out = Vec::new();
    for pattern in patterns.get_ref() {
        let files = host.files(pattern).map_err(|m| cx.err(patterns, "include", m))?;
        for (path, text) in files {
            if main.is_some_and(|m| same(m, &path)) {
                continue;
            }
            let name = path.display().to_string();
            let mut inc = Cx { file: &name, text: &text }.toml()?;
            if let Some(dir) = path.parent() {
                schema::anchor_included(&mut inc, dir);
            }
            out.push((path, text, inc));
        }
    }
    Ok(out)
}

impl Cx<'_> {
    /// The text as TOML of type `T`; errors located in it.
    fn toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            let key = at.map_or(String::new(), |at| located::key_at(self.text, at));
            let message = located::in_our_words(e.message().trim_end(), &key);
            self.err_at(at.map_or(0, |at| self.line(at)), &key, message)
        })
    }

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

    /// The line of the table header `[name]` (0 when there is none).
    fn table_line(&self, name: &str) -> usize {
        let header = format!("[{name}]");
        self.text.lines().position(|l| l.trim() == header).map_or(0, |i| i + 1)
    }

    /// An error about the value `v` of `key`.
    fn err<T>(&self, v: &Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        let span = v.span();
        let line = if span.is_empty() && span.start == 0 { 0 } else { self.line(span.start) };
        self.err_at(line, key, message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputKind;
    use crate::output::syslog::SyslogSettings;
    use crate::rules::WindowSpec;

    /// No file system: the schema and its checks alone.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        let file = Some(Path::new("/etc/lw.toml"));
        Config::parse_with(text, file, &Overrides::default(), &host::Fake)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// `text` is an error whose message holds `want`.
    fn expect_err(text: &str, want: &str) {
        let e = err(text);
        assert!(e.contains(want), "{e}");
    }

    #[test]
    fn defaults_reproduce_the_old_script() {
        let c = parse("").unwrap();
        assert_eq!(c.sources[0].path, "/logs/apache/ssl_www_log-%Y-%m-%d");
        assert_eq!(c.sources[0].name, "default");
        assert_eq!(c.rules.len(), 1);
        let r = &c.rules[0];
        assert_eq!(r.name, "today_download");
        assert_eq!(
            r.spec,
            WindowSpec { threshold: 10, window: 600, cooldown: 600, distinct: false }
        );
        assert_eq!(
            c.outputs,
            vec![OutputConfig {
                max_queued: 100_000,
                rules: None,
                kind: OutputKind::Syslog(SyslogSettings {
                    target: "unix:/dev/log".into(),
                    format: "rfc3164".into(),
                    facility: 1,
                    severity: 3,
                    tag: "AlbumMonitor".into(),
                    pid: false,
                })
            }]
        );
        assert_eq!(c.cleanup_interval, Duration::from_secs(300));
        assert!(c.effective_toml().contains("today_download"));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[source]\nformat = \"combined\"\n\n[[rule]]\nthreshold = 0\n");
        assert_eq!(e, "/etc/lw.toml:5: rule[1].threshold: must be from 1 to 4294967295 (got 0)");
        let e = err("[[rule]]\ncontains = \"x\"\nthreshold = 4294967296\n");
        assert!(e.ends_with("must be from 1 to 4294967295 (got 4294967296)"), "{e}");
        let e = err("[[rule]]\ncontains = \"x\"\nwindow = \"0s\"\n");
        assert!(e.starts_with("/etc/lw.toml:3: rule[1].window: must be longer"), "{e}");
        let e = err("[[output]]\ntag = \"ThisTagIsMuchTooLongForSyslogToKeepIt\"\n");
        assert!(e.starts_with("/etc/lw.toml:2: output[1].tag:"), "{e}");
        let e = err("[[output]]\ntag = \"Album\\u0007\"\n");
        assert!(e.contains("output[1].tag"), "{e}");
        let e = err("[source]\nformatt = \"combined\"\n");
        assert!(
            e.starts_with("/etc/lw.toml:2: source.formatt: \"formatt\" is not a known key here; use name, path, timezone,"),
            "{e}"
        );
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
        let e = err("[[output]]\ntype = \"webhook\"\nurl = \"https://hooks.example:99999/x\"\n");
        assert!(e.contains(":3: output[1].url: \"https://hooks.example:99999/x\" is not an http:// or https:// URL (a host, no spaces, a port up to 65535)"), "{e}");
        let e = err("[[output]]\nfacility = \"usr\"\n");
        assert!(e.contains("not a facility"), "{e}");
        let e = err("[[rule]]\nmessage = \"{clinet}\"\n");
        assert!(e.contains("rule[1].message"), "{e}");
        let e = err("[source]\nformat = \"%h %l\"\n");
        assert!(e.contains("no %t"), "{e}");
    }

    #[test]
    fn included_files_add_rules_and_allow_entries_in_file_name_order() {
        let c = parse("include = [\"/rules.d/*.toml\"]\n").unwrap();
        let names: Vec<&str> = c.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["10-env", "login"], "no built-in rule beside included ones");
        assert_eq!(c.rules[0].spec.threshold, 2);
        assert_eq!(c.rules[1].spec.threshold, 10, "defaults fill an included rule too");
        assert!(c.allow.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(c.included.len(), 2);
        let with_own = "include = [\"/rules.d/*.toml\"]\n[[rule]]\nname = \"mine\"\n";
        let names: Vec<String> =
            parse(with_own).unwrap().rules.into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["mine", "10-env", "login"]);
        let e = err("include = [\"/bad.d/*.toml\"]\n");
        assert!(e.starts_with("/bad.d/x.toml:3: rule[1].threshold: "), "{e}");
        let e = err("include = [\"/rules.d/*.toml\"]\n[[rule]]\nname = \"login\"\n");
        assert!(
            e.starts_with(
                "/rules.d/20-login.toml:2: rule[1].name: \"login\" is used by an earlier rule"
            ),
            "{e}"
        );
        assert_eq!(
            parse("include = [\"/none.d/*.toml\"]\n").unwrap().rules[0].name,
            "today_download"
        );
    }

    #[test]
    fn vhost_user_and_host_rules_need_a_format_that_logs_them() {
        let ok = "[source]\nformat = \"vhost_combined\"\n[[rule]]\nfield = \"vhost\"\ncontains = \"shop\"\n";
        assert_eq!(parse(ok).unwrap().rules[0].field, crate::rules::FieldSel::Vhost);
        let e = err("[[rule]]\nfield = \"vhost\"\ncontains = \"shop\"\n");
        assert!(e.starts_with("/etc/lw.toml:2: rule[1].field: \"vhost\": source.format logs no virtual host; vhost_combined"), "{e}");
        let e = err("[[rule]]\nfield = \"cookie\"\n");
        assert!(e.contains("use request, method, path, query, status, user_agent, referer, vhost, user, host, header:Name"), "{e}");
        assert!(
            parse("[[rule]]\nfield = \"user\"\ncontains = \"admin\"\n").is_ok(),
            "combined logs %u"
        );
        let e = err("[[rule]]\nfield = \"host\"\ncontains = \"x\"\n");
        assert!(e.contains("rule[1].field: \"host\": source.format logs no Host header; formats with %{Host}i do"), "{e}");
        let with_host = "[source]\nformat = '%h %l %u %t \"%r\" %>s %b \"%{Host}i\"'\n[[rule]]\nfield = \"host\"\ncontains = \"x\"\n";
        assert!(parse(with_host).is_ok());
    }

    #[test]
    fn header_fields_keys_and_distinct_counts() {
        use crate::rules::{FieldSel, KeyPart};
        let format =
            "[source]\nformat = '%h %l %u %t \"%r\" %>s %b \"%{X-Api-Key}i\" \"%{User-Agent}i\"'\n";
        let c = parse(&format!("{format}[[rule]]\nfield = \"header:x-api-key\"\ncontains = \"k\"\nkey = [\"client\", \"header:X-Api-Key\"]\n")).unwrap();
        assert_eq!(c.rules[0].field, FieldSel::Header(0));
        assert_eq!(c.rules[0].key, [KeyPart::Client, KeyPart::Field(FieldSel::Header(0))]);
        let ua =
            parse(&format!("{format}[[rule]]\nfield = \"header:User-Agent\"\ncontains = \"k\"\n"))
                .unwrap();
        assert_eq!(ua.rules[0].field, FieldSel::UserAgent);
        let e = err(&format!("{format}[[rule]]\nfield = \"header:Cookie\"\n"));
        assert!(
            e.contains("rule[1].field: \"header:Cookie\": source.format logs no Cookie header"),
            "{e}"
        );
        assert!(e.contains("add \"%{Cookie}i\" to the format"), "{e}");
        expect_err(
            "[source]\nformat = \"apache_error\"\n[[rule]]\nfield = \"header:X\"\n",
            "only access log formats log headers",
        );
        let user = parse("[[rule]]\nkey = \"user\"\n").unwrap();
        assert_eq!(user.rules[0].key, [KeyPart::Field(FieldSel::User)]);
        assert!(!user.rules[0].by_client());
        expect_err(
            "[[rule]]\nkey = [\"client\", \"status\"]\n",
            "rule[1].key: \"status\" cannot be used here",
        );
        expect_err("[[rule]]\nkey = []\n", "rule[1].key: must name at least one field");
        expect_err("[[rule]]\nkey = \"vhost\"\n", "source.format logs no virtual host");
        let d = parse("[[rule]]\nstatus = [404]\ndistinct = \"path\"\nthreshold = 20\n").unwrap();
        assert_eq!((d.rules[0].distinct, d.rules[0].spec.distinct), (Some(FieldSel::Path), true));
        expect_err(
            "[[rule]]\nstatus = [404]\ndistinct = \"line\"\n",
            "rule[1].distinct: \"line\" cannot be used here",
        );
        let farm = "[cluster]\nredis = \"redis://127.0.0.1\"\n[[rule]]\nstatus = [404]\ndistinct = \"path\"\n";
        assert!(parse(farm).unwrap().rules[0].spec.distinct, "a farm counts distinct values too");
    }

    #[test]
    fn several_sources_and_the_rules_that_read_them() {
        let two = "[[source]]\nname = \"www\"\npath = \"/l/www.log\"\n\
                   [[source]]\nname = \"api\"\npath = \"/l/api.log\"\nformat = \"vhost_combined\"\n";
        let c = parse(&format!("{two}[[rule]]\nsources = [\"api\"]\nfield = \"vhost\"\ncontains = \"a\"\n[[rule]]\ncontains = \"b\"\n")).unwrap();
        let names: Vec<&str> = c.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["www", "api"]);
        assert_eq!((c.rules[0].sources, c.rules[1].sources), (Some(0b10), None));
        assert!(!c.rules[0].reads(0) && c.rules[0].reads(1) && c.rules[1].reads(0));
        assert_eq!(c.source_index(Some("api")), Ok(1));
        assert_eq!(c.source_index(None), Ok(0));
        assert!(c.source_index(Some("x")).unwrap_err().contains("the sources are www, api"));
        expect_err(
            &format!("{two}[[rule]]\nfield = \"vhost\"\ncontains = \"a\"\n"),
            "rule[1].field: \"vhost\": source \"www\"'s format logs no virtual host",
        );
        expect_err(
            &format!("{two}[[rule]]\nsources = [\"web\"]\n"),
            "rule[1].sources: \"web\" is not a source; the sources are www, api",
        );
        expect_err(&format!("{two}[[rule]]\nsources = []\n"), "rule[1].sources: lists no source");
        let e = err(
            "[[source]]\nname = \"a\"\npath = \"/x\"\n[[source]]\nname = \"a\"\npath = \"/y\"\n",
        );
        assert!(
            e.starts_with("/etc/lw.toml:5: source[2].name: \"a\" names an earlier source too"),
            "{e}"
        );
        expect_err(
            "[[source]]\nname = \"a\"\npath = \"/x\"\n[[source]]\nname = \"b\"\npath = \"/x\"\n",
            "source[2].path: is source \"a\"'s path too",
        );
        expect_err(
            "[[source]]\npath = \"/x\"\n",
            "source[1].name: is required in [[source]] blocks",
        );
        expect_err(
            "[[source]]\nname = \"a b\"\npath = \"/x\"\n",
            "source[1].name: \"a b\" is not a name",
        );
        expect_err(
            "[[source]]\nname = \"a\"\npath = \"/x\"\n[[source]]\nname = \"b\"\npath = \"/y\"\nipv6_prefix = 48\n",
            "source[2].ipv6_prefix: must be the same in every source",
        );
        // A range error names the block it is in.
        expect_err(
            "[[source]]\nname = \"a\"\npath = \"/x\"\n[[source]]\nname = \"b\"\npath = \"/y\"\nipv6_prefix = 129\n",
            "source[2].ipv6_prefix: must be 1 to 128 (128 = every address apart",
        );
        expect_err(
            "[[source]]\nname = \"a\"\npath = \"/x\"\nmax_line_bytes = 10\n",
            "source[1].max_line_bytes: must be 256 to",
        );
        expect_err(
            "[[source]]\nname = \"a\"\npath = \"/x\"\nformatt = 1\n",
            "source[1].formatt: \"formatt\" is not a known key here",
        );
        // A header has one slot in every format that logs it.
        let h = "[[source]]\nname = \"a\"\npath = \"/x\"\nformat = '%h %t \"%{X-A}i\" \"%{X-B}i\"'\n\
                 [[source]]\nname = \"b\"\npath = \"/y\"\nformat = '%h %t \"%{X-B}i\"'\n";
        let c = parse(&format!("{h}[[rule]]\nfield = \"header:X-B\"\ncontains = \"z\"\n")).unwrap();
        assert_eq!(c.rules[0].field, crate::rules::FieldSel::Header(1));
        let m = "message = \"{header:X-A} {header:X-B} {key}\"\n";
        assert!(parse(&format!("{h}[[rule]]\ncontains = \"z\"\n{m}")).is_ok());
        expect_err(
            &format!("{h}[[rule]]\ncontains = \"z\"\nmessage = \"{{header:X-C}}\"\n"),
            "unknown placeholder {header:X-C}",
        );
        expect_err(
            &format!("{h}[[rule]]\nfield = \"header:X-A\"\ncontains = \"z\"\n"),
            "source \"b\"'s format logs no X-A header",
        );
        let only_a = parse(&format!(
            "{h}[[rule]]\nsources = [\"a\"]\nfield = \"header:X-A\"\ncontains = \"z\"\n"
        ));
        assert!(only_a.is_ok());
    }

    /// What a rule counts, as farm nodes compare it: alike for lists in
    /// another order and a header in another slot; different for another
    /// literal, key or allow-list, the global one included.
    #[test]
    fn farm_rules_say_what_they_count() {
        let matches = |text: &str| parse(text).unwrap().farm_rules()[0].matches.clone();
        let base = matches("[[rule]]\ncontains = \"x\"\nstatus = [404, 403]\n");
        assert_eq!(base.len(), 32);
        assert_eq!(base, matches("[[rule]]\ncontains = \"x\"\nstatus = [403, 404]\n"));
        for other in [
            "[[rule]]\ncontains = \"y\"\nstatus = [404, 403]\n",
            "[[rule]]\ncontains = \"x\"\nstatus = [404]\n",
            "[[rule]]\ncontains = \"x\"\nstatus = [404, 403]\nkey = \"user\"\n",
            "[[rule]]\ncontains = \"x\"\nstatus = [404, 403]\nallow = [\"10.0.0.0/8\"]\n",
            "[allow]\nclients = [\"10.0.0.0/8\"]\n[[rule]]\ncontains = \"x\"\nstatus = [404, 403]\n",
        ] {
            assert_ne!(base, matches(other), "{other}");
        }
        let rule = "[[rule]]\nfield = \"header:X-B\"\ncontains = \"z\"\n";
        let one = matches(&format!("[source]\nformat = '%h %t \"%{{X-B}}i\"'\n{rule}"));
        let two =
            matches(&format!("[source]\nformat = '%h %t \"%{{X-A}}i\" \"%{{X-B}}i\"'\n{rule}"));
        assert_eq!(one, two, "a header by its name, not its slot");
    }

    #[test]
    fn farm_rules_say_how_their_sources_find_the_client() {
        let clients = |text: &str| parse(text).unwrap().farm_rules()[0].clients.clone();
        let xff = "[source]\nclient = \"%{X-Forwarded-For}i\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n[[rule]]\ncontains = \"x\"\n";
        let base = clients(xff);
        assert_eq!(base.len(), 32);
        let alike = [
            xff.replace("X-Forwarded-For", "x-forwarded-for"),
            xff.replace("\"10.0.0.0/8\", \"192.0.2.1\"", "\"192.0.2.1\", \"10.0.0.0/8\""),
            // Two sources found alike, or one of them, compare alike.
            xff.replace("[source]", "[[source]]\nname = \"a\"\npath = \"/a\"")
                .replace("[[rule]]", "[[source]]\nname = \"b\"\npath = \"/b\"\nclient = \"%{X-Forwarded-For}i\"\ntrusted_proxies = [\"192.0.2.1\", \"10.0.0.0/8\"]\n[[rule]]"),
        ];
        for text in alike {
            assert_eq!(base, clients(&text), "{text}");
        }
        let other = [
            xff.replace("X-Forwarded-For", "X-Real-IP"),
            xff.replace(", \"192.0.2.1\"", ""),
            xff.replace("[[rule]]", "ipv6_prefix = 128\n[[rule]]"),
            "[[rule]]\ncontains = \"x\"\n".to_string(),
        ];
        for text in other {
            assert_ne!(base, clients(&text), "{text}");
        }
        // The default peer is the format's %a where it logs one, else %h.
        let with_a = |client: &str| {
            clients(&format!(
                "[source]\nformat = '%a %h %t \"%r\" %>s %b'\n{client}[[rule]]\ncontains = \"x\"\n"
            ))
        };
        assert_eq!(with_a(""), with_a("client = \"%a\"\n"));
        assert_ne!(with_a(""), with_a("client = \"%h\"\n"));
        let plain =
            |client: &str| clients(&format!("[source]\n{client}[[rule]]\ncontains = \"x\"\n"));
        assert_eq!(plain(""), plain("client = \"%h\"\n"), "combined logs no %a");
    }

    #[test]
    fn http_settings_and_their_errors() {
        assert_eq!(parse("").unwrap().http, None);
        let h = parse("[http]\n").unwrap().http.unwrap();
        assert_eq!(h.listen.to_string(), "127.0.0.1:9745");
        assert_eq!((h.token, h.unhealthy_after), (None, Duration::from_secs(60)));
        let c = parse("[http]\nlisten = \"0.0.0.0:9000\"\ntoken = \"abc123\"\n").unwrap();
        assert_eq!(c.http.as_ref().unwrap().token.as_deref(), Some("abc123"));
        assert!(c.effective_toml().contains("token = \"***\""), "{}", c.effective_toml());
        assert!(!c.effective_toml().contains("abc123"));
        let e = err("[http]\nlisten = \"0.0.0.0:9000\"\n");
        assert!(e.starts_with("/etc/lw.toml:2: http.token: a token is required when http.listen is not a loopback address (0.0.0.0:9000)"), "{e}");
        let e = err("[http]\nlisten = \"localhost\"\n");
        assert!(e.contains("http.listen: \"localhost\" is not an address and port"), "{e}");
        let e = err("[http]\ntoken = \"a b\"\n");
        assert!(e.contains("http.token: must be 1 to 256 characters without spaces"), "{e}");
    }

    #[test]
    fn cluster_settings_and_their_errors() {
        assert_eq!(parse("").unwrap().cluster, None);
        let c = parse("[cluster]\nredis = \"redis://:pw@10.0.0.5:6379/0\"\n").unwrap();
        let farm = c.cluster.clone().unwrap();
        assert_eq!(farm.redis, ["redis://:pw@10.0.0.5:6379/0"]);
        assert_eq!((farm.node.as_str(), farm.prefix.as_str()), ("web01", "logwarden"));
        assert_eq!(farm.timeout, Duration::from_millis(250));
        assert!(c.effective_toml().contains("redis = \"redis://:***@10.0.0.5:6379/0\""));
        let seeds = "[cluster]\nredis = [\"redis://a:7000\", \"redis://b:7000\"]\nnode = \"w2\"\n";
        assert_eq!(parse(seeds).unwrap().cluster.unwrap().redis.len(), 2);
        let e = err("[cluster]\nnode = \"w\"\n");
        assert!(e.starts_with("/etc/lw.toml:1: cluster.redis: is required"), "{e}");
        let e = err("[cluster]\nredis = \"http://:pw@x\"\n");
        assert!(
            e.starts_with("/etc/lw.toml:2: cluster.redis: \"http://:***@x\" is not a Redis URL"),
            "{e}"
        );
        let e = err("[cluster]\nredis = 6379\n");
        assert!(e.contains("cluster.redis: must be a Redis URL in quotes"), "{e}");
        let e = err("[cluster]\nredis = \"redis://a\"\nnode = \"web{1}\"\n");
        assert!(e.starts_with("/etc/lw.toml:3: cluster.node: \"web{1}\": must be 1 to 64"), "{e}");
        let e = err("[cluster]\nredis = \"redis://a\"\ntimeout = \"2m\"\n");
        assert!(e.starts_with("/etc/lw.toml:3: cluster.timeout: must be 1ms to 60s"), "{e}");
        let e = err("[cluster]\nredis = \"redis://a\"\nnodes = \"x\"\n");
        assert!(
            e.contains(
                "cluster.nodes: \"nodes\" is not a known key here; use redis, node, prefix, timeout"
            ),
            "{e}"
        );
    }

    #[test]
    fn type_errors_name_the_key_in_our_words() {
        let e = err("[[rule]]\ncontains = \"x\"\nthreshold = \"ten\"\n");
        assert_eq!(
            e,
            "/etc/lw.toml:3: rule[1].threshold: must be a whole number (got the text \"ten\")"
        );
        assert!(parse("[[rule]]\nwindow = \"10 minutes\"\n").is_ok());
        let e = err("[[rule]]\nwindow = \"10 minutez\"\n");
        assert!(
            e.starts_with("/etc/lw.toml:2: rule[1].window: \"10 minutez\" is not a duration"),
            "{e}"
        );
        assert!(!e.contains("Text("), "{e}");
        let e = err("[[rule]]\nwindow = true\n");
        assert!(e.starts_with("/etc/lw.toml:2: rule[1].window: must be a duration"), "{e}");
        let e = err("[[output]]\ntype = \"syslog\"\nfacility = \"user.eror\"\n");
        assert!(
            e.starts_with("/etc/lw.toml:3: output[1].facility: \"eror\" is not a severity"),
            "{e}"
        );
        let e = err("[rule]\nthreshold = 3\n");
        assert!(e.contains("rule: write [[rule]] (each rule is its own table), not [rule]"), "{e}");
        let e = err("[source]\nfile_events = \"yes\"\n");
        assert_eq!(
            e,
            "/etc/lw.toml:2: source.file_events: must be true or false (got the text \"yes\")"
        );
    }

    #[test]
    fn an_outputs_rules_must_each_name_a_rule() {
        let out = "[[output]]\ntype = \"jsonl\"\npath = \"/a\"\nrules = [\"x\", \"log*\"]\n";
        let rules = "[[rule]]\nname = \"x\"\n[[rule]]\nname = \"login\"\ncontains = \"l\"\n";
        let c = parse(&format!("{out}{rules}")).unwrap();
        assert_eq!(c.outputs[0].rules, Some(vec!["x".to_string(), "log*".to_string()]));
        let e = err(&format!("{}{rules}", out.replace("log*", "lgo*")));
        assert!(
            e.contains(":4: output[1].rules: \"lgo*\" names no rule; the rules are x, login"),
            "{e}"
        );
        let e = err(&format!("{}{rules}", out.replace("\"x\", \"log*\"", "")));
        assert!(e.contains("output[1].rules: lists no rule"), "{e}");
        let e = err(&format!("{}{rules}", out.replace("log*", "log[")));
        assert!(
            e.contains("output[1].rules: \"log[\" names no rule, nor is it a pattern ("),
            "{e}"
        );
    }

    #[test]
    fn a_jsonl_output_a_source_follows_is_refused() {
        let text = "[source]\npath = \"/var/log/apache2/*.log\"\n[[output]]\ntype = \"jsonl\"\npath = \"/var/log/apache2/alerts.log\"\n";
        let e = err(text);
        assert!(e.contains(":5: output[1].path: /var/log/apache2/alerts.log is a file source \"default\" follows (/var/log/apache2/*.log): its alerts would be read back"), "{e}");
        assert!(parse(&text.replace("alerts.log", "alerts.jsonl")).is_ok());
    }

    #[test]
    fn rules_no_output_gets_are_told() {
        let rules = "[[rule]]\nname = \"x\"\n[[rule]]\nname = \"y\"\ncontains = \"y\"\n";
        let out = "[[output]]\ntype = \"jsonl\"\npath = \"/a\"\nrules = [\"x\"]\n";
        assert_eq!(parse(&format!("{rules}{out}")).unwrap().rules_without_output(), ["y"]);
        let both = format!("{out}[[output]]\ntype = \"jsonl\"\npath = \"/b\"\n");
        assert!(parse(&format!("{rules}{both}")).unwrap().rules_without_output().is_empty());
    }

    #[test]
    fn the_keys_holding_secrets_are_named() {
        let hook = |url: &str, more: &str| {
            format!("[[output]]\ntype = \"webhook\"\nurl = \"{url}\"\n{more}")
        };
        let keys = |text: &str| parse(text).unwrap().secret_keys();
        assert!(keys("").is_empty());
        assert!(keys(&hook("http://127.0.0.1:9000", "")).is_empty());
        assert!(keys(&hook("http://127.0.0.1:9000/", "")).is_empty());
        assert_eq!(keys(&hook("https://hooks.slack.com/services/T0/B0/X", "")), ["output[1].url"]);
        assert_eq!(keys(&hook("https://u:p@alerts.example", "")), ["output[1].url"]);
        let headers =
            hook("http://alerts.example", "headers = { Authorization = \"GenieKey k\" }\n");
        assert_eq!(keys(&headers), ["output[1].headers"]);
        assert!(keys("[cluster]\nredis = \"redis://10.0.0.5:6379/0\"\n").is_empty());
        let both = "[cluster]\nredis = [\"redis://a:7000\", \"redis://:pw@b:7000\"]\n[http]\ntoken = \"abc\"\n";
        assert_eq!(keys(both), ["cluster.redis", "http.token"]);
    }

    #[test]
    fn allow_lists_and_their_errors() {
        let c = parse("[allow]\nclients = [\"192.0.2.10\", \"10.0.0.0/8\"]\nfiles = []\n").unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(c.allow.contains(ip("10.1.2.3")) && c.allow.contains(ip("192.0.2.10")));
        assert!(!c.allow.contains(ip("192.0.2.11")));
        let e = err("[allow]\nclients = [\"10.0.0.300\"]\n");
        assert!(
            e.starts_with("/etc/lw.toml:2: allow.clients: \"10.0.0.300\" is not an address"),
            "{e}"
        );
        let e = err("[allow]\nfiles = [\"/allow.d/*.txt\"]\n");
        assert!(e.starts_with("/allow.d/a.txt:5: allow: \"10.0.0.300\" is not an address"), "{e}");
        let e = err("[[rule]]\nallow = [\"nope\"]\n");
        assert!(e.starts_with("/etc/lw.toml:2: rule[1].allow: \"nope\" is not an address"), "{e}");
        let c =
            parse("[[rule]]\nallow = [\"2001:db8::/32\"]\nnormalize = false\nignore_case = true\n");
        assert!(c.unwrap().rules[0].allow.contains(ip("2001:db8::1")));
        // A block that holds everyone is a typo that silences the rules.
        let e = err("[allow]\nclients = [\"10.0.0.0/0\"]\n");
        assert!(e.contains("allow.clients: \"10.0.0.0/0\" holds every IPv4 address"), "{e}");
        let e = err("[[rule]]\nallow = [\"2001:db8::/0\"]\n");
        assert!(e.contains("rule[1].allow: \"2001:db8::/0\" holds every IPv4 and IPv6"), "{e}");
        assert!(parse("[allow]\nclients = [\"0.0.0.0/1\", \"::/1\"]\n").is_ok());
        // Trusting every proxy makes the client the header's forged first address.
        let xff = "[source]\nclient = \"%{X-Forwarded-For}i\"\ntrusted_proxies = [\"10.0.0.1\", \"0.0.0.0/0\"]\n";
        let e = err(xff);
        assert!(e.contains("source.trusted_proxies: \"0.0.0.0/0\" trusts every address"), "{e}");
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
        assert_eq!(
            c.rules[1].spec,
            WindowSpec { threshold: 10, window: 60, cooldown: 60, distinct: false }
        );
        let OutputKind::Syslog(s) = &c.outputs[0].kind else { panic!("syslog output") };
        assert_eq!((s.facility, s.severity), (1, 3));
        let c = parse("[[output]]\ntype = \"jsonl\"\npath = \"/tmp/a.jsonl\"\n").unwrap();
        assert_eq!(c.outputs[0].kind, OutputKind::Jsonl(PathBuf::from("/tmp/a.jsonl")));
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
        // An output's rules name the file's rules, which the command line
        // replaced: not checked (replay uses no outputs).
        let text = "[[rule]]\nname = \"x\"\n[[output]]\ntype = \"jsonl\"\npath = \"/a\"\nrules = [\"x\"]\n";
        let c = Config::parse_with(text, None, &ov, &host::Fake).unwrap();
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].spec.threshold, 3);
        assert_eq!(c.threads, 2);
    }

    /// A glob over another source's file, or a link to it, makes two
    /// sources follow one file: told for the rules that read both.
    #[test]
    fn a_file_of_two_sources_is_told_for_the_rules_reading_both() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("access.log"), b"").unwrap();
        std::fs::write(dir.path().join("other.log"), b"").unwrap();
        std::os::unix::fs::symlink(dir.path().join("other.log"), dir.path().join("link")).unwrap();
        let text = format!(
            "[[source]]\nname = \"a\"\npath = \"{d}/access.log\"\n\
             [[source]]\nname = \"b\"\npath = \"{d}/*.log\"\n\
             [[source]]\nname = \"c\"\npath = \"{d}/link\"\n\
             [[rule]]\nname = \"all\"\ncontains = \"x\"\n\
             [[rule]]\nname = \"just-c\"\ncontains = \"x\"\nsources = [\"c\"]\n\
             [[rule]]\nname = \"a-and-c\"\ncontains = \"x\"\nsources = [\"a\", \"c\"]\n"
        );
        let c = Config::parse(&text, None, &Overrides::default()).unwrap();
        let twice = c.read_twice();
        let found: Vec<_> =
            twice.iter().map(|t| (t.path.file_name().unwrap(), &t.sources, &t.rules)).collect();
        let (a, b, c_) = ("a".to_string(), "b".to_string(), "c".to_string());
        let all = vec!["all".to_string()];
        assert_eq!(
            found,
            [
                (std::ffi::OsStr::new("access.log"), &(a, b.clone()), &all),
                (std::ffi::OsStr::new("link"), &(b, c_), &all),
            ]
        );
        assert!(twice[0].to_string().contains("rule(s) all read both"), "{}", twice[0]);
    }

    /// `include = ["/etc/logwarden/*.toml"]` beside logwarden.toml matches
    /// the configuration file too: it is left out (it was read as a rule
    /// file, and refused for its own `include`).
    #[test]
    fn an_include_glob_leaves_out_the_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("logwarden.toml");
        let text = format!(
            "include = [\"{}/*.toml\"]\n[[rule]]\nname = \"own\"\ncontains = \"x\"\n",
            dir.path().display()
        );
        std::fs::write(&main, &text).unwrap();
        std::fs::write(dir.path().join("more.toml"), "[[rule]]\ncontains = \"y\"\n").unwrap();
        let c = Config::parse(&text, Some(&main), &Overrides::default()).unwrap();
        let names: Vec<&str> = c.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["own", "more"]);
        assert_eq!(c.included, [(dir.path().join("more.toml"), 1)]);
    }

    /// Relative paths in the file are relative to its directory, not to
    /// the working directory (`/` under systemd): a source that would
    /// never appear, a state directory that cannot be made.
    #[test]
    fn relative_paths_are_the_files_directorys() {
        let text = "include = [\"rules.d/*.toml\"]\n[source]\npath = \"logs/a-%Y-%m-%d\"\n\
                    [[output]]\ntype = \"jsonl\"\npath = \"out/alerts.jsonl\"\n\
                    [state]\ndir = \"state\"\n";
        let at = |text: &str| {
            Config::parse_with(
                text,
                Some(Path::new("/lw.toml")),
                &Overrides::default(),
                &host::Fake,
            )
        };
        let c = at(text).unwrap();
        assert_eq!(c.included.len(), 2, "rules.d/*.toml is /rules.d/*.toml");
        // The fake allow-list has an error on its fifth line: it was read.
        let e = at("[allow]\nfiles = [\"allow.d/*.txt\"]\n").unwrap_err().to_string();
        assert!(e.starts_with("/allow.d/a.txt:5:"), "{e}");
        assert_eq!(c.state_dir, Path::new("/state"));
        assert!(
            matches!(&c.outputs[0].kind, OutputKind::Jsonl(p) if p == Path::new("/out/alerts.jsonl"))
        );
        assert!(
            c.effective_toml().contains("path = \"/logs/a-%Y-%m-%d\""),
            "{}",
            c.effective_toml()
        );
        let absolute = parse("[state]\ndir = \"/var/lib/lw\"\n").unwrap();
        assert_eq!(absolute.state_dir, Path::new("/var/lib/lw"));
    }
}
