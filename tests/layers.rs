//! The module structure: dependencies point one way (each module of `src/`
//! names only modules below it), and the core — `parse`, `rules`, `window`
//! — runs on its own, without configuration, files or outputs.

use crate::util::root;
use logwarden::parse::client::Key;
use logwarden::parse::normalize::Normalized;
use logwarden::parse::time::Zone;
use logwarden::parse::{ClientSource, Format, Parser};
use logwarden::rules::{FieldSel, Rule, RuleDef, RuleSet, WindowSpec};
use logwarden::template::{Mode, Template};
use logwarden::window::{Outcome, Windows};
use std::path::Path;

/// The modules from the bottom up: a module may use only those before it.
const ORDER: [&str; 17] = [
    "testing", "units", "threads", "template", "parse", "rules", "window", "alert", "source",
    "follow", "state", "farm", "pipeline", "output", "observe", "config", "app",
];

/// The top-level module a source file belongs to (`parse/time.rs` → `parse`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The crate modules a file names: `crate::x` and `crate::{x, y}`.
fn named_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for rest in text.split("crate::").skip(1) {
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(
                inner.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string()),
            );
        } else {
            let name = rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next();
            out.push(name.unwrap_or("").to_string());
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src/") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn dependencies_point_one_way() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut wrong = Vec::new();
    for f in &files {
        let Some(module) = module_of(&src, f) else { continue };
        if module == "lib" || module == "main" {
            continue;
        }
        let own = rank(&module)
            .unwrap_or_else(|| panic!("{} is not in ORDER; add its module there", f.display()));
        let text = std::fs::read_to_string(f).expect("read source file");
        for m in named_modules(&text) {
            match rank(&m) {
                Some(r) if r < own || m == module => {}
                _ => wrong.push(format!("{} names crate::{m}", f.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the order {ORDER:?}:\n{}", wrong.join("\n"));
    // The check must have something to check.
    assert!(files.len() > 20, "found only {} source files", files.len());
}

#[test]
fn the_check_sees_grouped_and_plain_paths() {
    let text = "use crate::{alert::Alert, parse};\nlet x = crate::config::Config::load;";
    assert_eq!(named_modules(text), ["alert", "parse", "config"]);
}

/// `parse`, `rules` and `window` alone decide alerts from bytes: no
/// configuration, no files, no clock.
#[test]
fn the_core_decides_without_io() {
    let message = Template::parse("{client}", &["client"], Mode::Text).unwrap();
    let spec = WindowSpec { threshold: 3, window: 60, cooldown: 60, distinct: false };
    let mut def = RuleDef::new("r", FieldSel::Path, "/login", spec, message);
    def.status = vec![401];
    let rule = Rule::new(def).unwrap();
    let rules = RuleSet::new(vec![rule]);
    let parser = Parser::new(
        Format::from_spec("combined", None).unwrap(),
        Zone::Utc,
        1_700_000_000,
        ClientSource::default(),
    );
    let mut windows = Windows::new(spec);
    let mut outcomes = Vec::new();
    // Second 10 is a 200 (no event); the alert at second 30 cools down the
    // client until second 90, so the fourth event only counts.
    for (sec, status) in [(0, 401), (10, 200), (20, 401), (30, 401), (50, 401)] {
        let line = format!(
            "192.0.2.7 - - [29/Nov/2026:10:00:{sec:02} +0000] \"POST /login HTTP/1.1\" {status} 9 \"-\" \"x\""
        );
        let rec = parser.parse(line.as_bytes()).unwrap();
        let t = u32::try_from(rec.time.epoch).unwrap();
        rules.events(&rec, 0, line.as_bytes(), &mut Normalized::default(), |_| {
            outcomes.push(windows.record(Key::of(rec.client, 128), t));
        });
    }
    assert_eq!(
        outcomes,
        [Outcome::Counted(1), Outcome::Counted(2), Outcome::Alert(3), Outcome::Counted(4)]
    );
}
