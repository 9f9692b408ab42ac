#!/usr/bin/env bash
# Benchmark of `logwarden run` catching up on a glob's backlogs (not a test:
# figures vary with the machine): FILES logs (default 20) under a glob, each
# HOURS hours (default 10) of PER_MIN lines a minute (default 60), written
# before the daemon starts from their beginnings, as after a long stop. The
# files are read in about the order of their lines' times, in steps of half
# the rules' WINDOW (default 10m; a minute at least). Prints how long until every file was read
# to its end (a marker client's hit at the end of each file, all at one
# second, alerts once all have been read) and the daemon's CPU.
#
#   benches/backlog.sh                          # 720k lines, a few seconds
#   FILES=200 HOURS=2 PER_MIN=1 benches/backlog.sh
#   WINDOW=10s benches/backlog.sh
#   LW=/path/to/other/logwarden benches/backlog.sh   # another build
#
# Needs: python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwbacklog}
FILES=${FILES:-20}
HOURS=${HOURS:-10}
PER_MIN=${PER_MIN:-60}
WINDOW=${WINDOW:-10m}
. "$HERE/benches/lib.sh"
build
rm -rf "$OUT" && mkdir -p "$OUT/logs"

python3 - "$OUT/logs" "$FILES" "$HOURS" "$PER_MIN" <<'PY'
import datetime, sys
d, n, hours, per_min = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = datetime.datetime(2025, 7, 8, tzinfo=datetime.timezone.utc)
stamp = lambda s: (base + datetime.timedelta(seconds=s)).strftime("%d/%b/%Y:%H:%M:%S +0000")
for f in range(n):
    lines, k = [], 0
    while k * 60 / per_min < hours * 3600:
        path = "/today_download" if k % 7 == 0 else "/index.html"
        ip = f"10.{f % 250}.{k % 250}.{k // 250 % 250}"
        lines.append(f'{ip} - - [{stamp(k * 60 / per_min + f * 0.7)}] "GET {path} HTTP/1.1" 200 512 "-" "b"\n')
        k += 1
    lines.append(f'198.51.100.99 - - [{stamp(hours * 3600 + 5)}] "GET /the_end HTTP/1.1" 200 5 "-" "b"\n')
    open(f"{d}/v{f}.log", "w").write("".join(lines))
PY
cat > "$OUT/logwarden.toml" <<EOF
[source]
path = "$OUT/logs/*.log"
start_at = "beginning"
[[rule]]
name = "end"
contains = "the_end"
threshold = $FILES
window = "$WINDOW"
[[rule]]
name = "downloads"
contains = "today_download"
threshold = 50
window = "$WINDOW"
[[output]]
type = "jsonl"
path = "$OUT/alerts.jsonl"
[state]
dir = "$OUT/state"
EOF
lines=$(cat "$OUT"/logs/*.log | wc -l)
start=$(date +%s%N)
"$LW" -c "$OUT/logwarden.toml" run 2> "$OUT/daemon.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
until grep -q the_end "$OUT/alerts.jsonl" 2>/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "backlog.sh: the daemon ended (see $OUT/daemon.log)" >&2; exit 1; }
  sleep 0.01
done
end=$(date +%s%N)
cpu=0
for f in /proc/$PID/task/*/schedstat; do cpu=$((cpu + $(cut -d' ' -f1 "$f"))); done
echo "$FILES files, $lines lines: read in $(( (end - start) / 1000000 )) ms, $((cpu / 1000000)) ms of CPU"
