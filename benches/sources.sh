#!/usr/bin/env bash
# `logwarden run` catching up on LINES lines (default 2M) from the start:
# once as one source (one file holding them all), once as two sources (two
# files of half as many, one follower thread each). Prints the seconds until
# /metrics counts every line read, and the ratio (two sources / one).
#
#   benches/sources.sh              # about a minute
#   LINES=4000000 RUNS=5 benches/sources.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwsources}
LINES=${LINES:-2000000}
RUNS=${RUNS:-3}
PORT=${PORT:-19745}
rm -rf "$OUT" && mkdir -p "$OUT"
. "$HERE/benches/lib.sh"
build

half=$((LINES / 2))
"$LG" file --lines "$half" --seed 1 --ips 20000 --attackers 50 --out "$OUT/www.log" >/dev/null
"$LG" file --lines "$half" --seed 2 --ips 20000 --attackers 50 --out "$OUT/api.log" >/dev/null
cat "$OUT/www.log" "$OUT/api.log" > "$OUT/all.log"

common() {  # the rule, output, state and status endpoint
  cat <<TOML
[[rule]]
contains = "today_download"
[[output]]
type = "jsonl"
path = "$1/alerts.jsonl"
[state]
dir = "$1/state"
[http]
listen = "127.0.0.1:$PORT"
TOML
}
mkdir -p "$OUT/one" "$OUT/two"
{ printf '[source]\npath = "%s/all.log"\nstart_at = "beginning"\n' "$OUT"; common "$OUT/one"; } > "$OUT/one/logwarden.toml"
{
  printf '[[source]]\nname = "www"\npath = "%s/www.log"\nstart_at = "beginning"\n' "$OUT"
  printf '[[source]]\nname = "api"\npath = "%s/api.log"\nstart_at = "beginning"\n' "$OUT"
  common "$OUT/two"
} > "$OUT/two/logwarden.toml"

# catch_up DIR: seconds from start until every line is read.
catch_up() {
  rm -rf "$1/state" "$1/alerts.jsonl"
  local start; start=$(date +%s.%N)
  "$LW" -c "$1/logwarden.toml" run 2> "$1/daemon.log" &
  local pid=$!
  while :; do
    local read
    read=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1 == "logwarden_lines_read_total" {print $2}')
    [ "${read:-0}" -ge "$LINES" ] 2>/dev/null && break
    sleep 0.01
  done
  local done_at; done_at=$(date +%s.%N)
  kill "$pid"; wait "$pid" || true
  python3 -c "print('%.3f' % ($done_at - $start))"
}
cat "$OUT"/*.log > /dev/null  # page cache warm for both
for _ in $(seq "$RUNS"); do
  printf '%s %s\n' "$(catch_up "$OUT/one")" "$(catch_up "$OUT/two")"
done | python3 -c '
import statistics, sys
pairs = [tuple(map(float, l.split())) for l in sys.stdin]
one = statistics.median(p[0] for p in pairs); two = statistics.median(p[1] for p in pairs)
print("one source:  %.3f s (median of %d)" % (one, len(pairs)))
print("two sources: %.3f s" % two)
print("two sources / one: %.2f" % (two / one))'
