#!/usr/bin/env bash
# Benchmarks of `logwarden run` following many files under a glob (a log per
# virtual host), and a dated series (not a test: figures vary with the
# machine). Prints the daemon's CPU time (every thread):
#   - at rest over IDLE_SECS (default 20): a dated series of one file, and
#     FILES files (default 2000) under a glob;
#   - while RATE lines/s (default 2000) are written one write per line, each
#     to a random one of the FILES, for RATE_SECS (default 5);
#   - taking in FILES rotations made at once (each renamed to .1 and a new
#     file with one line created), until quiet (3 s in a row under 20 ms);
#     then FILES rotations with logrotate's `create` (new files empty), and
#     a line into each; then FILES copytruncates, and a line into each;
#   - a restart after FILES files were renamed while it was stopped, and one
#     after they were copytruncated.
#
#   benches/many.sh                 # about 1 minute
#   FILES=200 IDLE_SECS=60 benches/many.sh
#   POLL=1 benches/many.sh          # polling (file_events = false), as on NFS
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwmany}
FILES=${FILES:-2000}
IDLE_SECS=${IDLE_SECS:-20}
RATE=${RATE:-2000}
RATE_SECS=${RATE_SECS:-5}
rm -rf "$OUT" && mkdir -p "$OUT/dated/logs" "$OUT/glob/logs"
. "$HERE/benches/lib.sh"
build

LINE='192.0.2.1 - - [01/Dec/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "bench"'
# start NAME PATH N: the daemon following PATH (N files) from its beginning; sets PID.
start() {
  printf '[source]\npath = "%s"\nstart_at = "beginning"\n%b[state]\ndir = "%s/%s/state"\n[[output]]\ntype = "jsonl"\npath = "%s/%s/alerts.jsonl"\n' \
    "$2" "${POLL:+file_events = false\n}" "$OUT" "$1" "$OUT" "$1" > "$OUT/$1/logwarden.toml"
  LOGWARDEN_LOG=info "$LW" -c "$OUT/$1/logwarden.toml" run 2> "$OUT/$1/daemon.log" &
  PID=$!
  # Started, and every file opened (after the start, by the reader).
  for _ in $(seq 600); do
    [ "$(grep -c 'Following log file' "$OUT/$1/daemon.log")" -ge "$3" ] && break; sleep 0.05
  done
  sleep 2
}
cpu_ms() {  # CPU time of every thread of the daemon, in ms
  local total=0
  for f in /proc/$PID/task/*/schedstat; do total=$((total + $(cut -d' ' -f1 "$f"))); done
  echo $((total / 1000000))
}
at_rest() {
  local before; before=$(cpu_ms); sleep "$IDLE_SECS"
  echo "$1 at rest: $(( $(cpu_ms) - before )) ms of CPU in $IDLE_SECS s"
}

echo "$LINE" > "$OUT/dated/logs/ssl_www_log-$(date -u +%Y-%m-%d)"
start dated "$OUT/dated/logs/ssl_www_log-%Y-%m-%d" 1
trap 'kill $PID 2>/dev/null || true' EXIT
at_rest "a dated series"
kill "$PID"; wait "$PID" 2>/dev/null || true

for i in $(seq "$FILES"); do echo "$LINE" > "$OUT/glob/logs/v$i.log"; done
start glob "$OUT/glob/logs/*.log" "$FILES"
at_rest "$FILES files under a glob"

before=$(cpu_ms)
python3 - "$OUT/glob/logs" "$FILES" "$RATE" "$RATE_SECS" <<'PY'
import random, sys, time
d, n, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
files = [open(f"{d}/v{i}.log", "a", buffering=1) for i in range(1, n + 1)]
line = '192.0.2.2 - - [01/Dec/2026:09:00:01 +0000] "GET /today_download HTTP/1.1" 200 5 "-" "bench"\n'
start, k = time.time(), 0
while time.time() - start < secs:
    random.choice(files).write(line)
    k += 1
    time.sleep(max(0.0, start + k / rate - time.time()))
PY
echo "$RATE lines/s over $FILES files for $RATE_SECS s: $(( $(cpu_ms) - before )) ms of CPU"

# rotate MODE: every file at once, its generations shifted first (.1 to .2);
# MODE rename: renamed to .1, a new file with one line made; create: renamed,
# a new empty file made (logrotate's `create`); copytruncate: copied to .1
# and emptied; line: one line appended to each.
rotate() {
  python3 - "$OUT/glob/logs" "$FILES" "$1" <<'PY'
import os, shutil, sys
d, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
line = '192.0.2.3 - - [01/Dec/2026:09:00:02 +0000] "GET / HTTP/1.1" 200 5 "-" "bench"\n'
for i in range(1, n + 1):
    p = f"{d}/v{i}.log"
    if mode == "line":
        with open(p, "a") as f:
            f.write(line)
        continue
    if os.path.exists(f"{p}.1"):
        os.replace(f"{p}.1", f"{p}.2")
    if mode == "copytruncate":
        shutil.copyfile(p, f"{p}.1")
        open(p, "w").close()
        continue
    os.rename(p, f"{p}.1")
    with open(p, "w") as f:
        f.write(line if mode == "rename" else "")
PY
}
# wait_quiet: until the daemon is quiet (3 s in a row under 20 ms); sets LAST
# (its CPU then, ms) and SECS (when it became quiet).
wait_quiet() {
  local quiet=0 now
  LAST=$(cpu_ms) SECS=0
  while [ "$quiet" -lt 3 ] && [ "$SECS" -lt 120 ]; do
    sleep 1; SECS=$((SECS + 1)); now=$(cpu_ms)
    if [ $((now - LAST)) -lt 20 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    LAST=$now
  done
  SECS=$((SECS - 3))
}
# until_quiet LABEL MODE: `rotate MODE`, and the CPU the daemon took for it.
until_quiet() {
  local before; before=$(cpu_ms)
  rotate "$2"
  wait_quiet
  echo "$FILES $1: $(( LAST - before )) ms of CPU; quiet after $SECS s (gave up at 120)"
}
# restarted MODE: the daemon stopped, `rotate MODE`, started again: its CPU
# from its start (when every file is open, and 2 s more) until quiet.
restarted() {
  kill "$PID"; wait "$PID" 2>/dev/null || true
  rotate "$1"
  start glob "$OUT/glob/logs/*.log" "$FILES"
  wait_quiet
  echo "a restart after $FILES files were rotated while stopped ($1): $LAST ms of CPU; quiet $SECS s after (gave up at 120)"
}
until_quiet "rotations at once" rename
until_quiet "rotations with create (new files empty)" create
until_quiet "first lines into the new empty files" line
until_quiet "copytruncates at once" copytruncate
until_quiet "first lines after the copytruncates" line
restarted rename
restarted copytruncate
