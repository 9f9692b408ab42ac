//! Helpers: run the binary, write temporary files.

pub mod daemon;
pub mod redis;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A loopback port nothing listens on now (free to bind, or closed to
/// connect to).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Path of the load generator (`loadgen`), built once for the tests that
/// use it (beside the logwarden binary under test).
pub fn loadgen() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--package", "loadgen"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "building loadgen failed");
    });
    Path::new(bin()).with_file_name("loadgen")
}

/// Path of the logwarden binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_logwarden")
}

/// The project's top directory.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the project (present on developer machines and in CI).
pub fn shared() -> PathBuf {
    root().join("../shared")
}

/// Runs logwarden with `args`, feeding `stdin`; never hangs on input.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwarden");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("wait for logwarden")
}

/// Runs and requires success; returns stdout as text.
pub fn ok(args: &[&str]) -> String {
    let out = run(args, b"");
    assert!(
        out.status.success(),
        "logwarden {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Writes `bytes` to `dir/name` and returns the path as text.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p.to_str().expect("utf-8 path").to_string()
}

/// Parses JSON lines.
pub fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// The JSON lines of a file still being appended to: a last line without
/// its newline yet is left out.
pub fn json_lines_so_far(text: &str) -> Vec<serde_json::Value> {
    json_lines(text.rfind('\n').map_or("", |end| text.split_at(end + 1).0))
}

/// How long any wait in the tests may take.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits for a child to exit; kills it and fails the test when `DEADLINE`
/// passes first.
pub fn exit_status(child: &mut std::process::Child) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > end {
            child.kill().unwrap_or(());
            panic!("the process hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds; fails the test when `DEADLINE` passes first.
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_or(what, cond, String::new);
}

/// The same, and a failure says `context()` too (what the processes logged).
pub fn wait_until_or(what: &str, mut cond: impl FnMut() -> bool, context: impl Fn() -> String) {
    let end = std::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}\n{}", context());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The journals of delivered alert ids that the outputs of `kind` keep in
/// the state directory `state` (`delivered-exec-….ids`, named by where each
/// delivers to), in the order of their names.
pub fn journals(state: &Path, kind: &str) -> Vec<PathBuf> {
    let prefix = format!("delivered-{kind}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(state)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    found
        .retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)));
    found.sort();
    found
}

/// A small HTTP server on loopback: answers 500 to the first `fail` requests,
/// then 200; records the bodies it accepted. It also serves as a proxy: a
/// `CONNECT host:port` is recorded as `CONNECT host:port` among the bodies
/// and answered 200, and the request that follows in the tunnel is served.
pub fn webhook_server(fail: usize) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    webhook_server_on(0, fail)
}

/// [`webhook_server`] on a port of the caller's choosing (0: any free one).
pub fn webhook_server_on(
    port: u16,
    fail: usize,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|r| r > 2) {
                if let Some(target) = line.strip_prefix("CONNECT ") {
                    let target = target.split(' ').next().unwrap_or("");
                    record.lock().unwrap().push(format!("CONNECT {target}"));
                    // The rest of its head, then the tunnel's request.
                    while reader.read_line(&mut line).is_ok_and(|r| r > 2) {
                        line.clear();
                    }
                    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
                    std::io::Write::write_all(&mut stream, established).unwrap_or(());
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap_or(());
            let status = if n < fail { "500 Internal Server Error" } else { "200 OK" };
            if n >= fail {
                record.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            }
            let reply =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            std::io::Write::write_all(&mut stream, reply.as_bytes()).unwrap_or(());
        }
    });
    (port, accepted)
}

/// An HTTPS server on loopback whose certificate a test CA signed
/// (`openssl s_server`, which answers 200 to one request and writes what it
/// received to `dir/received`): its port, the CA's file, and the server.
pub fn https_once(dir: &Path) -> (u16, PathBuf, Reaped) {
    let (ca, cert, key) = redis::tls_files(dir);
    let port = free_port();
    let received = std::fs::File::create(dir.join("received")).unwrap();
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(received)
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl (apt-get install openssl)");
    // Sent as the connection opens; the client reads it after its request.
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    child.stdin.as_mut().unwrap().write_all(reply).unwrap();
    let server = Reaped(child);
    wait_until("openssl s_server", || {
        std::fs::read_to_string(dir.join("received")).is_ok_and(|s| s.contains("ACCEPT"))
    });
    (port, ca, server)
}

/// A child process killed when dropped, so a failing test leaves none behind.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        self.0.kill().unwrap_or(());
        self.0.wait().map(|_| ()).unwrap_or(());
    }
}

/// One HTTP GET to 127.0.0.1:`port` (with a bearer `token`): the status
/// code and the body; `None` while nothing answers.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(DEADLINE)).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// `logwarden -c CFG replay --json LOG`, which must succeed: its alerts.
pub fn replay_alerts(cfg: &str, log: &str) -> Vec<serde_json::Value> {
    replay_alerts_with(cfg, log, &[])
}

/// [`replay_alerts`] with further options.
pub fn replay_alerts_with(cfg: &str, log: &str, options: &[&str]) -> Vec<serde_json::Value> {
    let args = [&["-c", cfg, "replay", "--json", log][..], options].concat();
    let out = run(&args, b"");
    assert!(out.status.success(), "{out:?}");
    json_lines(&String::from_utf8_lossy(&out.stdout))
}

/// A source that hands the engine these events, in this order, and notes
/// when it has handed the last.
pub struct Scripted {
    events: Vec<logwarden::source::SourceEvent>,
    ended: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Scripted {
    /// A source of `events`.
    pub fn new(events: Vec<logwarden::source::SourceEvent>) -> Scripted {
        Scripted { events, ended: Default::default() }
    }

    /// When it will have handed its last event (`None` before).
    pub fn ended(&self) -> std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>> {
        std::sync::Arc::clone(&self.ended)
    }
}

impl logwarden::source::Source for Scripted {
    fn run(
        self: Box<Self>,
        emit: &mut dyn FnMut(logwarden::source::SourceEvent) -> bool,
    ) -> Result<(), logwarden::source::SourceError> {
        for ev in self.events {
            if !emit(ev) {
                return Ok(());
            }
        }
        *self.ended.lock().unwrap() = Some(std::time::Instant::now());
        Ok(())
    }
}

/// A sink that keeps the alerts.
#[derive(Default)]
pub struct Kept(pub Vec<logwarden::alert::Alert>);

impl logwarden::pipeline::Sink for Kept {
    fn alert(&mut self, alert: logwarden::alert::Alert) {
        self.0.push(alert);
    }
}

/// libfaketime's library, which shifts the clock of a process it is
/// preloaded in by `FAKETIME` (Debian's `faketime` package).
pub fn faketime_library() -> &'static str {
    let found = std::fs::read_dir("/usr/lib").into_iter().flatten().flatten().find_map(|d| {
        let lib = d.path().join("faketime/libfaketime.so.1");
        lib.exists().then_some(lib)
    });
    let lib = found.expect("libfaketime is missing: apt-get install faketime (scripts/test does)");
    lib.to_string_lossy().into_owned().leak()
}
