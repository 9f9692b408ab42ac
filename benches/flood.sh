#!/usr/bin/env bash
# A flood of clients: `logwarden run` follows 3M lines from about a million
# distinct clients (every line a hit), appended at once, and must keep up
# (target >= 2M lines/s) with a peak RSS <= 1.5x that of `replay` on the same
# file. Prints both, the time the daemon needed, and how much state it
# wrote (base and change log).
#
#   benches/flood.sh                      # about a minute
#   LW=/path/to/other/logwarden benches/flood.sh   # the same for another build
#
# Needs: python3, GNU time (apt-get install time), ../shared/bench.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$HERE/../shared}
OUT=${OUT:-/tmp/lwflood}
STRESS=${STRESS:-/tmp/lwbench/stress.log}
[ -x /usr/bin/time ] || { echo "flood.sh: GNU time is missing (apt-get install time)" >&2; exit 1; }
. "$HERE/benches/lib.sh"
build
if [ ! -s "$STRESS" ]; then
  [ -f "$SHARED/bench/gen_apache_log.py" ] || { echo "flood.sh: no log generator at $SHARED/bench" >&2; exit 1; }
  mkdir -p "$(dirname "$STRESS")"
  python3 "$SHARED/bench/gen_apache_log.py" --lines 3000000 --seed 3 --ips 1000000 --zipf 0 \
    --target-share 1.0 --attackers 50 --out "$STRESS" --expect /dev/null
fi
LINES=$(wc -l < "$STRESS")
rm -rf "$OUT" && mkdir -p "$OUT"
write_config "$OUT" 10

echo "== replay of the same file"
/usr/bin/time -f "%M %e" -o "$OUT/replay.time" "$LW" -c "$OUT/logwarden.toml" replay --no-progress "$STRESS" > /dev/null 2> "$OUT/replay.log"
read -r replay_rss replay_s < "$OUT/replay.time"
echo "replay: ${replay_s} s, peak RSS $((replay_rss / 1024)) MB"

echo "== run, following the file while $LINES lines are appended at once"
: > "$OUT/access.log"
LOGWARDEN_LOG=info /usr/bin/time -f "%M" -o "$OUT/run.rss" "$LW" -c "$OUT/logwarden.toml" run 2> "$OUT/daemon.log" > /dev/null &
TIME_PID=$!
sleep 0.2
PID=$(pgrep -P "$TIME_PID")   # the daemon itself (time does not pass signals on)
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q "Following log file" "$OUT/daemon.log" && break; sleep 0.05; done
start=$(date +%s.%N)
cat "$STRESS" >> "$OUT/access.log"
# A probe client's hits, after the flood: its alert means every line before
# it was read and decided.
"$LG" probe --path "$OUT/access.log" --alerts "$OUT/alerts.jsonl" --count 1 --threshold 10 --timeout-ms 300000 > /dev/null
done_at=$(date +%s.%N)
du -b "$OUT/state/state.bin" "$OUT/state/state.wal" 2>/dev/null | sed 's/^/state written (now): /' || true
kill -TERM "$PID"; wait "$TIME_PID" || true
trap - EXIT
run_rss=$(cat "$OUT/run.rss")
grep -E "Stopped" "$OUT/daemon.log" | sed 's/.*Stopped; /daemon: /'
python3 - "$start" "$done_at" "$LINES" "$run_rss" "$replay_rss" <<'PY'
import sys
start, done, n, run_rss, replay_rss = map(float, sys.argv[1:])
rate = n / (done - start)
print("run followed %d lines in %.2f s: %.0f lines/s (target >= 2M: %s)" % (n, done - start, rate, "met" if rate >= 2e6 else "MISSED"))
ratio = run_rss / replay_rss
print("peak RSS: run %.0f MB, replay %.0f MB: %.2fx (target <= 1.5x: %s)" % (run_rss / 1024, replay_rss / 1024, ratio, "met" if ratio <= 1.5 else "MISSED"))
PY
