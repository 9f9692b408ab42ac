//! What configuration checks ask the file system: whether a program can be
//! run, which time zones exist. Behind a trait, so the schema's tests run
//! without one.

use crate::follow::PathSpec;
use crate::parse::time::Zone;
use std::path::{Path, PathBuf};

/// The checks of a configuration that need the machine it runs on.
pub trait Host {
    /// The zone named `name` (`local` for the system's own), if known.
    fn zone(&self, name: &str) -> Option<Zone>;
    /// Whether `program` is an executable file, by path or on `PATH`.
    fn program_exists(&self, program: &str) -> bool;
    /// The files a pattern names (a path, or a glob in the file name: no
    /// match is no file), in name order, with their text: allow-lists and
    /// included rule files.
    fn files(&self, pattern: &str) -> Result<Vec<(PathBuf, String)>, String>;
    /// This machine's name (a farm node's default name).
    fn host_name(&self) -> String;
}

/// This machine.
pub struct System;

impl Host for System {
    fn host_name(&self) -> String {
        rustix::system::uname().nodename().to_string_lossy().into_owned()
    }

    fn zone(&self, name: &str) -> Option<Zone> {
        match name {
            "local" => Some(Zone::local()),
            "UTC" | "utc" => Some(Zone::Utc),
            name => Zone::named(name),
        }
    }

    fn program_exists(&self, program: &str) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let executable = |p: &Path| {
            p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if program.contains('/') {
            return executable(Path::new(program));
        }
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|d| executable(&d.join(program)))
        })
    }

    fn files(&self, pattern: &str) -> Result<Vec<(PathBuf, String)>, String> {
        let spec = PathSpec::parse(pattern).map_err(|m| format!("{pattern:?} {m}"))?;
        let mut paths = match spec {
            PathSpec::Glob { .. } => spec
                .current([u32::MAX; 5])
                .map_err(|e| format!("cannot list {}: {e}", spec.dir().display()))?,
            _ => vec![PathBuf::from(pattern)],
        };
        paths.sort();
        paths
            .into_iter()
            .map(|p| match std::fs::read_to_string(&p) {
                Ok(text) => Ok((p, text)),
                Err(e) => Err(format!("cannot read {}: {e}", p.display())),
            })
            .collect()
    }
}

/// A machine for tests: only UTC (also as `local`), and the programs `sh`
/// and `true`.
#[cfg(test)]
pub struct Fake;

#[cfg(test)]
impl Host for Fake {
    fn host_name(&self) -> String {
        "web01".into()
    }

    fn zone(&self, name: &str) -> Option<Zone> {
        matches!(name, "local" | "UTC" | "utc").then_some(Zone::Utc)
    }

    fn program_exists(&self, program: &str) -> bool {
        matches!(program, "sh" | "true")
    }

    /// `/allow.d/a.txt` for `/allow.d/*.txt`; two rule files for
    /// `/rules.d/*.toml`; one with an error on its third line for
    /// `/bad.d/*.toml`.
    fn files(&self, pattern: &str) -> Result<Vec<(PathBuf, String)>, String> {
        let one = |path: &str, text: &str| Ok(vec![(PathBuf::from(path), text.to_string())]);
        match pattern {
            "/allow.d/*.txt" => {
                one("/allow.d/a.txt", "# office\n192.0.2.0/24\n\n198.51.100.7 # monitor\n10.0.0.300\n")
            }
            "/rules.d/*.toml" => Ok(vec![
                (PathBuf::from("/rules.d/10-env.toml"), "[[rule]]\ncontains = \"/.env\"\nthreshold = 2\n".into()),
                (
                    PathBuf::from("/rules.d/20-login.toml"),
                    "[[rule]]\nname = \"login\"\nmethod = [\"POST\"]\nstatus = [401]\n[allow]\nclients = [\"192.0.2.1\"]\n".into(),
                ),
            ]),
            "/bad.d/*.toml" => one("/bad.d/x.toml", "[[rule]]\ncontains = \"x\"\nthreshold = 0\n"),
            _ => Ok(Vec::new()),
        }
    }
}
