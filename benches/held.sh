#!/usr/bin/env bash
# Held alerts: the syslog socket is missing while CLIENTS clients (default
# 200000) each raise an alert. Syslog holds what it can (max_queued, default
# 100000; the rest is dropped and counted), a jsonl output keeps working.
# Prints how long the daemon needed for the lines (a probe's alert through
# jsonl), how long SIGTERM took, the peak RSS and the state written.
#
#   benches/held.sh
#   CLIENTS=50000 LW=/path/to/other/logwarden benches/held.sh
#
# Needs: python3, GNU time (apt-get install time).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwheld}
CLIENTS=${CLIENTS:-200000}
[ -x /usr/bin/time ] || { echo "held.sh: GNU time is missing (apt-get install time)" >&2; exit 1; }
. "$HERE/benches/lib.sh"
build
rm -rf "$OUT" && mkdir -p "$OUT"
write_config "$OUT" 1 "[[output]]
type = \"syslog\"
target = \"unix:$OUT/missing.sock\""
python3 - "$CLIENTS" > "$OUT/flood.log" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    ip = "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255)
    print('%s - - [29/Nov/2026:10:%02d:%02d +0000] "GET /today_download HTTP/1.1" 200 5 "-" "x"' % (ip, i // 3600 % 60, i // 60 % 60))
PY
: > "$OUT/access.log"
/usr/bin/time -f "%M" -o "$OUT/run.rss" "$LW" -c "$OUT/logwarden.toml" run 2> "$OUT/daemon.log" > /dev/null &
TIME_PID=$!
sleep 0.2
PID=$(pgrep -P "$TIME_PID")
trap 'kill -9 $PID 2>/dev/null || true' EXIT
sleep 0.5
start=$(date +%s.%N)
cat "$OUT/flood.log" >> "$OUT/access.log"
"$LG" probe --path "$OUT/access.log" --alerts "$OUT/alerts.jsonl" --count 1 --threshold 1 --timeout-ms 900000 > /dev/null
done_at=$(date +%s.%N)
# Two more seconds: a couple of saves with everything held.
sleep 2
echo "state after the flood: $(du -cb "$OUT"/state/state.* | tail -1 | cut -f1) bytes"
term=$(date +%s.%N)
kill -TERM "$PID"; wait "$TIME_PID" || true
stopped=$(date +%s.%N)
trap - EXIT
grep -E "Queue full|dropped|Stopped" "$OUT/daemon.log" | sed 's/^[^ ]* *//' | cut -c1-200 || true
python3 - "$start" "$done_at" "$term" "$stopped" "$CLIENTS" "$(cat "$OUT/run.rss")" <<'PY'
import sys
start, done, term, stopped, n, rss = map(float, sys.argv[1:])
print("%d alerting clients read and decided, probe alert through jsonl after %.2f s" % (n, done - start))
print("SIGTERM to exit: %.2f s; peak RSS %.0f MB" % (stopped - term, rss / 1024))
PY
