//! Criterion benchmarks of the hot stages: parsing a line, counting in a
//! window, and the whole pipeline over an in-memory log. `cargo bench`.
//! Wall-clock figures on a shared 2-core VM are noisy; `benches/compare.sh`
//! times whole runs against other tools on the same files.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logwarden::config::{Config, Overrides};
use logwarden::parse::client::Key;
use logwarden::parse::time::Zone;
use logwarden::parse::{ClientSource, Format, Needs, Parser};
use logwarden::rules::WindowSpec;
use logwarden::source::{Files, Input, Opened};
use logwarden::window::Windows;
use std::hint::black_box;
use std::io::Cursor;

const LINE: &[u8] = br#"203.0.113.77 - - [09/Jul/2025:14:30:25 +0900] "GET /files/today_download?id=42 HTTP/1.1" 200 51234 "https://www.example.com/" "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0""#;

fn parser(spec: &str) -> Parser {
    Parser::new(
        Format::from_spec(spec, None).unwrap(),
        Zone::Utc,
        1_700_000_000,
        ClientSource::default(),
    )
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(LINE.len() as u64));
    let combined = parser("combined");
    g.bench_function("combined_all_fields", |b| {
        b.iter(|| combined.parse(black_box(LINE)).unwrap().status)
    });
    let needs = Needs::BASE.with(logwarden::parse::access::Field::Request);
    g.bench_function("combined_to_request", |b| {
        b.iter(|| combined.parse_needed(black_box(LINE), needs).unwrap().time.epoch)
    });
    let auto = parser("auto");
    g.bench_function("auto", |b| b.iter(|| auto.parse(black_box(LINE)).unwrap().status));
    g.finish();
}

fn bench_window(c: &mut Criterion) {
    let spec = WindowSpec { threshold: 10, window: 600, cooldown: 600, distinct: false };
    c.bench_function("window/record_10k_keys", |b| {
        let mut w = Windows::new(spec);
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            w.record(Key(u128::from(i % 10_000)), 1_750_000_000 + i / 50)
        })
    });
}

/// Counts alerts.
struct Count(u64);

impl logwarden::pipeline::Sink for Count {
    fn alert(&mut self, _: logwarden::alert::Alert) {
        self.0 += 1;
    }
}

/// A log of `n` lines, 2 % hitting the target, 500 clients.
fn log(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 200);
    for i in 0..n {
        let path = if i % 50 == 0 { "/today_download" } else { "/index.html" };
        let line = format!(
            "10.0.{}.{} - - [09/Jul/2025:14:{:02}:{:02} +0900] \"GET {path} HTTP/1.1\" {} 512 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n",
            i % 2,
            i % 250,
            (i / 6000) % 60,
            (i / 100) % 60,
            if i % 13 == 0 { 404 } else { 200 }
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn bench_pipeline(c: &mut Criterion) {
    let data = log(200_000);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    let configs = [
        ("literal_1thread", "[[rule]]\ncontains = \"today_download\"\n[engine]\nthreads = 1\n"),
        ("status_1thread", "[[rule]]\nstatus = [404]\n[engine]\nthreads = 1\n"),
        ("status_2threads", "[[rule]]\nstatus = [404]\n[engine]\nthreads = 2\n"),
    ];
    for (name, text) in configs {
        let cfg = Config::parse(text, None, &Overrides::default()).unwrap();
        let engine = cfg.engine();
        g.bench_function(name, |b| {
            b.iter(|| {
                let input = vec![(Input::Stdin, Opened::stream(Cursor::new(data.clone())))];
                engine.run(Box::new(Files::new(input)), None, &mut Count(0)).unwrap().alerts
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_window, bench_pipeline);
criterion_main!(benches);
