//! The line generator: realistic, varied, and the same for the same seed on
//! every machine (its own splitmix64, so no crate upgrade changes the output).

use clap::ValueEnum;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Line formats loadgen writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Style {
    /// Apache common.
    Common,
    /// Apache combined.
    Combined,
    /// Apache vhost_combined.
    VhostCombined,
}

/// What to generate.
pub struct Plan {
    pub lines: u64,
    pub seed: u64,
    pub style: Style,
    pub ips: usize,
    pub v6_share: f64,
    pub target: String,
    pub target_share: f64,
    pub attackers: usize,
    pub near_miss: usize,
    pub threshold: u32,
    pub window: u32,
    pub log_rate: f64,
    pub start: i64,
    pub offset: i32,
    pub jitter: u32,
}

/// splitmix64: tiny, fast and stable across versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "-",
    r#"Mozilla/5.0 (compatible; \"QuoteBot\" 1.0)"#,
    r"Mozilla/5.0 (X11; Linux) \\x5c-backslash-agent/0.1",
    r#"evil \" 6.6.6.6 - - [01/Jan/2020:00:00:00 +0000] \"GET /today_download"#,
];
const REFERERS: &[&str] = &[
    "-",
    "-",
    "-",
    "https://www.example.com/",
    "https://www.google.com/",
    r#"https://evil.example/?q=\"x\""#,
];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/favicon.ico",
    "/robots.txt",
    "/css/site.css?v=3",
    "/news/story-{n}.html",
    "/api/v1/items/{n}",
    "/api/v1/search?q=rust+log&page={n}",
    "/login",
    "/wp-login.php",
    "/.env",
    "/downloads/archive-{n}.zip",
    r#"/search?q=\"quoted\"&n={n}"#,
    "/%E4%B8%8B%E8%BD%BD/{n}",
];
const TARGET_PATHS: &[&str] =
    &["/{t}", "/{t}", "/files/{t}?id={n}", "/{t}/file-{n}.zip", "/cgi/dl.php?f={t}&n={n}"];
const STATUSES: &[u16] =
    &[200, 200, 200, 200, 200, 200, 200, 200, 301, 302, 304, 400, 403, 404, 404, 500];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Generates lines one at a time.
pub struct Generator {
    plan: Plan,
    rng: Rng,
    ips: Vec<String>,
    cum: Vec<f64>,
    normal: Vec<String>,
    hits: Vec<String>,
    tails: Vec<String>,
    bursts: HashMap<u64, usize>,
    i: u64,
    stamp_sec: i64,
    stamp: String,
    last_time: i64,
}

impl Generator {
    /// Prepares pools and burst plans.
    pub fn new(plan: Plan) -> Generator {
        let mut rng = Rng(plan.seed);
        let ips = make_ips(&mut rng, plan.ips, plan.v6_share);
        let mut acc = 0.0;
        let cum = (0..ips.len()).map(|r| {
            acc += 1.0 / (r as f64 + 1.0).powf(0.9);
            acc
        });
        let cum = cum.collect();
        let normal: Vec<String> = (0..4000)
            .map(|_| {
                let path = rng_path(&mut rng, PATHS, "");
                request(&mut rng, path)
            })
            .filter(|r| !r.contains(&plan.target))
            .chain([r#""-" 408 -"#.to_string(), r#""\x16\x03\x01" 400 226"#.to_string()])
            .collect();
        let hits = (0..500)
            .map(|_| {
                let path = rng_path(&mut rng, TARGET_PATHS, &plan.target);
                request(&mut rng, path)
            })
            .collect();
        let mut tails: Vec<String> =
            (0..300).map(|_| format!("\"{}\" \"{}\"", rng.pick(REFERERS), rng.pick(UAS))).collect();
        // A referer holding the target must not count for a rule on the request.
        tails.push(format!("\"https://www.example.com/{}\" \"curl/8\"", plan.target));
        let bursts = plan_bursts(&mut rng, &plan, ips.len());
        Generator {
            plan,
            rng,
            ips,
            cum,
            normal,
            hits,
            tails,
            bursts,
            i: 0,
            stamp_sec: i64::MIN,
            stamp: String::new(),
            last_time: 0,
        }
    }

    /// Time (Unix seconds) of the line just written.
    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    /// Writes the next line into `out` (cleared first). Returns `None` when
    /// done, else whether the line is an event: `Some((client, time))`.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> Option<Option<(String, i64)>> {
        if self.i >= self.plan.lines {
            return None;
        }
        let i = self.i;
        self.i += 1;
        let mut t = self.plan.start + (i as f64 / self.plan.log_rate) as i64;
        if self.plan.jitter > 0 && self.rng.below(20) == 0 {
            t -= self.rng.below(u64::from(self.plan.jitter) + 1) as i64;
        }
        self.last_time = t;
        let burst = self.bursts.get(&i).copied();
        let is_hit = burst.is_some() || self.rng.unit() < self.plan.target_share;
        let ip_idx = burst.unwrap_or_else(|| self.popular());
        let req = if is_hit { self.rng.pick(&self.hits) } else { self.rng.pick(&self.normal) };
        let tail = self.rng.pick(&self.tails);
        if t != self.stamp_sec {
            self.stamp_sec = t;
            self.stamp = clf_stamp(t, self.plan.offset);
        }
        out.clear();
        let mut s = String::with_capacity(256);
        let ip = &self.ips[ip_idx];
        let _ = match self.plan.style {
            Style::Common => writeln!(s, "{ip} - - [{}] {req}", self.stamp),
            Style::Combined => writeln!(s, "{ip} - - [{}] {req} {tail}", self.stamp),
            Style::VhostCombined => {
                writeln!(s, "www.example.com:443 {ip} - - [{}] {req} {tail}", self.stamp)
            }
        };
        out.extend_from_slice(s.as_bytes());
        Some(is_hit.then(|| (ip.clone(), t)))
    }

    fn popular(&mut self) -> usize {
        let total = *self.cum.last().unwrap_or(&1.0);
        let x = self.rng.unit() * total;
        self.cum.partition_point(|&c| c < x).min(self.ips.len() - 1)
    }
}

fn make_ips(rng: &mut Rng, n: usize, v6_share: f64) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ip = if rng.unit() < v6_share {
            let mut bits = (0x2001_0db8_u128 << 96)
                | u128::from(rng.next()) << 32
                | u128::from(rng.next() as u32);
            if rng.below(2) == 0 {
                bits &= !(0xffff_ffff_ffff_u128 << 16);
            }
            Ipv6Addr::from(bits).to_string()
        } else {
            let v = rng.next() as u32;
            let [a, b, c, d] = v.to_be_bytes();
            Ipv4Addr::new(a % 223 + 1, b, c, d % 254 + 1).to_string()
        };
        if seen.insert(ip.clone()) {
            out.push(ip);
        }
    }
    out
}

fn rng_path(rng: &mut Rng, paths: &[&str], target: &str) -> String {
    rng.pick(paths).replace("{t}", target).replace("{n}", &rng.below(99_999).to_string())
}

fn request(rng: &mut Rng, path: String) -> String {
    let method = *rng.pick(&["GET", "GET", "GET", "GET", "POST", "HEAD"]);
    let status = *rng.pick(STATUSES);
    let size = if status == 304 || method == "HEAD" {
        "-".to_string()
    } else {
        rng.below(90_000).to_string()
    };
    let proto = *rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/2.0", "HTTP/1.0"]);
    format!("\"{method} {path} {proto}\" {status} {size}")
}

fn plan_bursts(rng: &mut Rng, plan: &Plan, n_ips: usize) -> HashMap<u64, usize> {
    let mut map = HashMap::new();
    let lines = plan.lines;
    if lines == 0 {
        return map;
    }
    let chosen: Vec<usize> = (0..(plan.attackers + plan.near_miss).min(n_ips))
        .map(|_| rng.below(n_ips as u64) as usize)
        .collect();
    for (k, &ip) in chosen.iter().enumerate() {
        let attacker = k < plan.attackers;
        let t = u64::from(plan.threshold);
        let hits = if attacker { t + rng.below(2 * t + 1) } else { t - 1 }.min(lines);
        let seconds = 10 + rng.below(u64::from(plan.window).saturating_sub(20).max(1));
        let span = ((seconds as f64 * plan.log_rate) as u64).clamp(hits.max(1), lines);
        let start = rng.below(lines - span + 1);
        for _ in 0..hits {
            let mut pos = start + rng.below(span);
            while map.contains_key(&pos) && pos + 1 < lines {
                pos += 1;
            }
            map.entry(pos).or_insert(ip);
        }
    }
    map
}

/// `[09/Jul/2025:00:00:00 +0900]` for Unix seconds `t` shown at `offset`.
fn clf_stamp(t: i64, offset: i32) -> String {
    let ts = jiff::Timestamp::from_second(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let off = jiff::tz::Offset::from_seconds(offset).unwrap_or(jiff::tz::Offset::UTC);
    let dt = off.to_datetime(ts);
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        dt.day(),
        MONTHS[dt.month() as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        a / 3600,
        a / 60 % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan {
            lines: 2000,
            seed,
            style: Style::Combined,
            ips: 50,
            v6_share: 0.2,
            target: "today_download".into(),
            target_share: 0.05,
            attackers: 3,
            near_miss: 3,
            threshold: 10,
            window: 600,
            log_rate: 5.0,
            start: 1_750_000_000,
            offset: 3600,
            jitter: 10,
        }
    }

    fn lines(seed: u64) -> Vec<u8> {
        let mut g = Generator::new(plan(seed));
        let (mut out, mut line) = (Vec::new(), Vec::new());
        while g.next_line(&mut line).is_some() {
            out.extend_from_slice(&line);
        }
        out
    }

    #[test]
    fn same_seed_same_log() {
        assert_eq!(lines(4), lines(4));
        assert_ne!(lines(4), lines(5));
        assert_eq!(lines(4).iter().filter(|&&c| c == b'\n').count(), 2000);
    }

    #[test]
    fn stamps_carry_the_offset() {
        assert_eq!(clf_stamp(1_750_000_000, 3600), "15/Jun/2025:16:06:40 +0100");
        assert_eq!(clf_stamp(1_750_000_000, -5400), "15/Jun/2025:13:36:40 -0130");
    }
}
