#!/usr/bin/env bash
# Benchmarks of `logwarden run` following a live file (not a test: figures
# vary with the machine). Prints:
#   - latency from a line being written to its alert in the jsonl output,
#     median and p99 over 200 alerts (target p99 <= 100 ms);
#   - CPU time of the idle daemon over IDLE_SECS (default 60; target < 10 ms);
#   - CPU time while lines come as a web server writes them, one write per
#     line, at RATES lines/s (default 1000 5000 20000), RATE_SECS each;
#   - sustained follow throughput while loadgen appends LINES lines as fast as
#     it can (target >= 2M lines/s), and how far behind the reader stays.
#
#   benches/live.sh                 # about 2 minutes
#   IDLE_SECS=10 LINES=2000000 benches/live.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwlive}
IDLE_SECS=${IDLE_SECS:-60}
RATES=${RATES:-1000 5000 20000}
RATE_SECS=${RATE_SECS:-5}
LINES=${LINES:-5000000}
rm -rf "$OUT" && mkdir -p "$OUT"
. "$HERE/benches/lib.sh"
build

write_config "$OUT" 10
: > "$OUT/access.log"
LOGWARDEN_LOG=info "$LW" -c "$OUT/logwarden.toml" run 2> "$OUT/daemon.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q Started "$OUT/daemon.log" && break; sleep 0.05; done

echo "== latency (line written -> alert in jsonl)"
"$LG" probe --path "$OUT/access.log" --alerts "$OUT/alerts.jsonl" --count 200 --threshold 10

cpu_ns() {  # CPU time of every thread of the daemon, in ns
  local total=0
  for f in /proc/$PID/task/*/schedstat; do total=$((total + $(cut -d' ' -f1 "$f"))); done
  echo "$total"
}
echo "== idle CPU over ${IDLE_SECS} s"
sleep 2
before=$(cpu_ns); sleep "$IDLE_SECS"; after=$(cpu_ns)
echo "idle daemon used $(( (after - before) / 1000000 )) ms of CPU in ${IDLE_SECS} s"

for rate in $RATES; do
  echo "== $rate lines/s, one write per line, for $RATE_SECS s"
  before=$(cpu_ns)
  "$LG" live --path "$OUT/access.log" --rate "$rate" --lines $((rate * RATE_SECS)) --now >/dev/null 2>&1
  after=$(cpu_ns)
  echo "the daemon used $(( (after - before) / 1000000 )) ms of CPU in $RATE_SECS s ($(( (after - before) / 10000000 / RATE_SECS )) % of a core)"
done

echo "== follow throughput ($LINES lines appended as fast as possible)"
start=$(date +%s.%N)
"$LG" live --path "$OUT/access.log" --rate 0 --lines "$LINES" --ips 20000 --attackers 50 --seed 5 2>&1 | tail -1
written=$(date +%s.%N)
"$LG" probe --path "$OUT/access.log" --alerts "$OUT/alerts.jsonl" --count 1 --threshold 10 --timeout-ms 120000 >/dev/null
done_at=$(date +%s.%N)
python3 - "$start" "$written" "$done_at" "$LINES" <<'PY'
import sys
start, written, done, n = map(float, sys.argv[1:])
print("writer took %.2f s (%.0f lines/s); the daemon had read and decided every line %.0f ms after the writer finished" % (
    written - start, n / (written - start), (done - written) * 1e3))
print("sustained follow throughput: %.0f lines/s" % (n / (done - start)))
PY
kill -TERM $PID; wait $PID || true
grep -E "Stopped" "$OUT/daemon.log" | sed 's/.*Stopped; /daemon: /'

# On two cores the writer above competes with the daemon for CPU, so that
# figure is bounded by the writer. Here the daemon alone follows a backlog
# of the same size written while it was stopped (its own reading speed).
echo "== catch-up throughput ($LINES lines written while the daemon was stopped)"
"$LG" live --path "$OUT/access.log" --rate 0 --lines "$LINES" --ips 20000 --attackers 50 --seed 6 2>&1 | tail -1
start=$(date +%s.%N)
LOGWARDEN_LOG=info "$LW" -c "$OUT/logwarden.toml" run 2> "$OUT/daemon2.log" &
PID=$!
"$LG" probe --path "$OUT/access.log" --alerts "$OUT/alerts.jsonl" --count 1 --threshold 10 --timeout-ms 120000 >/dev/null
done_at=$(date +%s.%N)
python3 -c "import sys; s, d, n = map(float, sys.argv[1:]); print('caught up with %d lines in %.2f s: %.0f lines/s' % (n, d - s, n / (d - s)))" "$start" "$done_at" "$LINES"
kill -TERM $PID; wait $PID || true
