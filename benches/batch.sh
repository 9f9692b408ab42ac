#!/usr/bin/env bash
# Batch figures: `logwarden replay` over compressed files against
# `zcat | rg -c` and `rg -z -c` on the same files, and 4 gzipped files
# against reading them one after another (the batch issue's goal: >= 1.7x):
# against BEFORE, a build from before the batch work (which read files one
# after another, decompressing on one thread), and against this build's
# four times one file.
#
#   benches/batch.sh              # about 2 minutes
#   OUT=/tmp/lwbatch RUNS=3 benches/batch.sh
#   git worktree add /tmp/before b899664~1 && (cd /tmp/before && cargo build --release)
#   BEFORE=/tmp/before/target/release/logwarden benches/batch.sh
#
# Needs: cargo, hyperfine, ripgrep, gzip, zstd (apt-get install hyperfine ripgrep zstd).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwbatch}
RUNS=${RUNS:-3}
mkdir -p "$OUT"
for tool in hyperfine rg gzip zstd; do
  command -v "$tool" >/dev/null || { echo "batch.sh: $tool is missing" >&2; exit 1; }
done
. "$HERE/benches/lib.sh"
build

for k in 1 2 3 4; do
  [ -s "$OUT/day$k.log.gz" ] || {
    "$LG" file --lines 1000000 --seed "$k" --ips 20000 --attackers 50 --out "$OUT/day$k.log" >/dev/null 2>&1
    zstd -q -f -3 "$OUT/day$k.log" -o "$OUT/day$k.log.zst"
    gzip -f -6 "$OUT/day$k.log"
  }
done
time_it lw_gz_1 "$LW replay --no-progress $OUT/day1.log.gz"
time_it lw_gz_4 "$LW replay --no-progress $OUT/day1.log.gz $OUT/day2.log.gz $OUT/day3.log.gz $OUT/day4.log.gz"
time_it lw_zst_4 "$LW replay --no-progress $OUT/day1.log.zst $OUT/day2.log.zst $OUT/day3.log.zst $OUT/day4.log.zst"
hyperfine --style none --runs "$RUNS" --warmup 1 --output pipe --export-json "$OUT/zcat_rg_4.json" \
  --shell bash "zcat $OUT/day1.log.gz $OUT/day2.log.gz $OUT/day3.log.gz $OUT/day4.log.gz | rg -c today_download" >/dev/null
time_it rg_z_4 "rg -z -c today_download $OUT/day1.log.gz $OUT/day2.log.gz $OUT/day3.log.gz $OUT/day4.log.gz"

# Alert output: a quarter of the lines alert (HTTP/2.0, threshold 1), as JSON,
# against the same scan with a threshold no client reaches.
[ -s "$OUT/plain.log" ] || {
  "$LG" file --lines 1000000 --seed 9 --ips 20000 --attackers 50 --out "$OUT/plain.log" >/dev/null 2>&1
  touch -d '1 hour ago' "$OUT/plain.log"  # mapped, as an old log is
}
time_it lw_alerts "$LW replay --no-progress --json --target HTTP/2.0 --threshold 1 --cooldown 0 $OUT/plain.log"
time_it lw_no_alerts "$LW replay --no-progress --json --target HTTP/2.0 --threshold 100000000 $OUT/plain.log"
ALERTS=$("$LW" replay --no-progress --json --target HTTP/2.0 --threshold 1 --cooldown 0 "$OUT/plain.log" 2>/dev/null | wc -l)

GZ4="$OUT/day1.log.gz $OUT/day2.log.gz $OUT/day3.log.gz $OUT/day4.log.gz"
# Hundreds of thousands of alerts in a scan of several days: the four .gz,
# one alert per client per 10 minutes of HTTP/2.0 requests, against the same
# rule with a cooldown of a year (the same windows, far fewer alerts).
ALERT_RULE="--json --target HTTP/2.0 --threshold 1"
time_it lw_gz_4_alerts "$LW replay --no-progress $ALERT_RULE --cooldown 10m $GZ4"
time_it lw_gz_4_few_alerts "$LW replay --no-progress $ALERT_RULE --cooldown 365d $GZ4"
MANY=$("$LW" replay --no-progress $ALERT_RULE --cooldown 10m $GZ4 2>/dev/null | wc -l)
FEW=$("$LW" replay --no-progress $ALERT_RULE --cooldown 365d $GZ4 2>/dev/null | wc -l)
time_it lw_gz_4_no_ahead "$LW replay --no-progress --read-ahead 0 $GZ4"
[ -z "${BEFORE:-}" ] || time_it before_gz_4 "$BEFORE replay --no-progress $GZ4"
/usr/bin/time -f %M -o "$OUT/rss_ahead" "$LW" replay --no-progress $GZ4 >/dev/null 2>&1
/usr/bin/time -f %M -o "$OUT/rss_no_ahead" "$LW" replay --no-progress --read-ahead 0 $GZ4 >/dev/null 2>&1

python3 - "$OUT" "$ALERTS" "$MANY" "$FEW" <<'PY'
import json, os, sys
out, alerts, many, few = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = ["lw_gz_1", "lw_gz_4", "lw_gz_4_no_ahead", "lw_zst_4", "zcat_rg_4", "rg_z_4", "lw_alerts", "lw_no_alerts", "lw_gz_4_alerts", "lw_gz_4_few_alerts"]
before = os.environ.get("BEFORE")
names += ["before_gz_4"] if before else []
med = {n: json.load(open(os.path.join(out, n + ".json")))["results"][0]["median"] for n in names}
print("| run (4 files of 1M lines unless said) | median s |")
print("|---|---:|")
for k, v in med.items():
    print("| %s | %.3f |" % (k, v))
print()
if before:
    print("4 .gz files against BEFORE's one after another: %.2fx faster (target >= 1.7x)" % (med["before_gz_4"] / med["lw_gz_4"]))
print("4 .gz files against this build's 4 x one file: %.2fx faster" % (4 * med["lw_gz_1"] / med["lw_gz_4"]))
print("replay of 4 .gz / zcat | rg -c: %.2f; / rg -z -c: %.2f" % (med["lw_gz_4"] / med["zcat_rg_4"], med["lw_gz_4"] / med["rg_z_4"]))
print("%d alerts as JSON: %.3f s against %.3f s without alerts (%.2f us more per alert)" % (alerts, med["lw_alerts"], med["lw_no_alerts"], (med["lw_alerts"] - med["lw_no_alerts"]) / alerts * 1e6))
per = (med["lw_gz_4_alerts"] - med["lw_gz_4_few_alerts"]) / (many - few)
print("4 .gz, %d alerts as JSON: %.3f s; %d alerts: %.3f s (%.2f us per alert: the %d alerts are %.0f %% of the run)" % (many, med["lw_gz_4_alerts"], few, med["lw_gz_4_few_alerts"], per * 1e6, many, 100 * per * many / med["lw_gz_4_alerts"]))
rss = lambda n: int(open(os.path.join(out, n)).read().split()[-1]) / 1024
print("peak RSS of the 4 .gz: %.0f MB with the default read-ahead, %.0f MB with --read-ahead 0" % (rss("rss_ahead"), rss("rss_no_ahead")))
PY
