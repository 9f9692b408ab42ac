#!/usr/bin/env bash
# Times `logwarden replay` against `rg -c`, the old script's algorithm
# (../shared/bench/seed_baseline.py) and, where installed, fail2ban-regex, on
# the same generated files, and prints the ratios the engine issue targets.
#
#   benches/compare.sh            # 1M-line file + stress file (about 3 minutes)
#   OUT=/tmp/lwbench RUNS=5 benches/compare.sh
#   SKIP_STRESS=1 benches/compare.sh
#   BEFORE=/path/to/older/logwarden benches/compare.sh   # also: the old rule alone, that build vs this one
#
# Needs: cargo, python3, hyperfine, ripgrep, GNU time (apt-get install
# hyperfine ripgrep time); fail2ban is optional.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$HERE/../shared}
OUT=${OUT:-/tmp/lwbench}
RUNS=${RUNS:-5}
mkdir -p "$OUT"
[ -f "$SHARED/bench/gen_apache_log.py" ] || { echo "compare.sh: no log generator at $SHARED/bench (set SHARED=/path/to/shared)" >&2; exit 1; }
for tool in hyperfine rg python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing (apt-get install hyperfine ripgrep time)" >&2; exit 1; }
done

. "$HERE/benches/lib.sh"
cargo build --release --quiet --manifest-path "$HERE/Cargo.toml" --workspace
LW=$HERE/target/release/logwarden
cat > "$OUT/status.toml" <<'TOML'
[[rule]]
name = "notfound"
status = [404]
threshold = 20
window = "1m"
TOML

gen() {  # name, generator args...
  local name=$1; shift
  [ -s "$OUT/$name.log" ] || python3 "$SHARED/bench/gen_apache_log.py" "$@" --out "$OUT/$name.log" --expect "$OUT/$name.expect.json" 2>/dev/null
}
gen 1m --lines 1000000 --seed 1 --ips 20000 --attackers 50
[ -n "${SKIP_STRESS:-}" ] || gen stress --lines 3000000 --seed 3 --ips 1000000 --zipf 0 --target-share 1.0 --attackers 50

F=$OUT/1m.log
cat "$F" > /dev/null  # page cache warm for everyone
time_it rg "rg -c today_download $F"
time_it lw_literal "$LW replay --no-progress $F"
time_it lw_literal_1core "taskset -c 0 $LW replay --no-progress --threads 1 $F"
time_it lw_status_1core "taskset -c 0 $LW -c $OUT/status.toml replay --no-progress --threads 1 $F"
time_it lw_status_1thread "$LW -c $OUT/status.toml replay --no-progress --threads 1 $F"
time_it lw_status_2threads "$LW -c $OUT/status.toml replay --no-progress --threads 2 $F"
if [ -n "${BEFORE:-}" ]; then  # the old rule alone (the default configuration), both builds
  time_it before_literal "$BEFORE replay --no-progress $F"
  [ -n "${SKIP_STRESS:-}" ] || time_it before_stress "$BEFORE replay --no-progress $OUT/stress.log"
  [ -n "${SKIP_STRESS:-}" ] || time_it lw_stress "$LW replay --no-progress $OUT/stress.log"
fi
RUNS=1 time_it seed_baseline "python3 $SHARED/bench/seed_baseline.py $F"
if command -v fail2ban-regex >/dev/null; then
  RUNS=1 time_it fail2ban "fail2ban-regex --print-no-missed $F $SHARED/bench/fail2ban/today-download.conf"
fi

# Exactness on the generated file: the first alert per client equals the
# generator's answer, which counts each IPv6 address apart (ipv6_prefix = 128).
printf '[source]\nipv6_prefix = 128\n' > "$OUT/exact.toml"
"$LW" -c "$OUT/exact.toml" replay --json --no-progress "$F" 2>/dev/null | python3 -c '
import json, sys
exp = json.load(open(sys.argv[1])); got = {}
for l in sys.stdin:
    a = json.loads(l); got.setdefault(a["key"], a["line"])
print("exactness: first alert per client %s generator (%d clients)" % ("==" if got == exp else "!=", len(exp)))' "$OUT/1m.expect.json"

if [ -z "${SKIP_STRESS:-}" ]; then
  /usr/bin/time -f %M -o "$OUT/stress.rss" "$LW" replay --no-progress "$OUT/stress.log" >/dev/null 2>"$OUT/stress.summary"
fi

python3 - "$OUT" "$F" <<'PY'
import json, os, sys
out, f = sys.argv[1], sys.argv[2]
size = os.path.getsize(f) / 1e6
med = {}
for name in ["rg", "lw_literal", "lw_literal_1core", "lw_status_1core", "lw_status_1thread", "lw_status_2threads", "seed_baseline", "fail2ban", "before_literal", "before_stress", "lw_stress"]:
    p = os.path.join(out, name + ".json")
    if os.path.exists(p):
        med[name] = json.load(open(p))["results"][0]["median"]
print("| run | median s | MB/s | x rg -c |")
print("|---|---:|---:|---:|")
for k, v in med.items():
    if k.startswith("before") or k.endswith("stress"):
        continue
    print("| %s | %.3f | %.0f | %.2f |" % (k, v, size / v, v / med["rg"]))
print()
print("replay / rg -c (target <= 2.5): %.2f" % (med["lw_literal"] / med["rg"]))
print("status rule, one core (taskset): %.0f MB/s (target >= 1000)" % (size / med["lw_status_1core"]))
print("status rule, 2 threads vs 1 thread: %.2fx (target >= 1.6x the one-core figure: %.2fx)" % (
    med["lw_status_1thread"] / med["lw_status_2threads"], med["lw_status_1core"] / med["lw_status_2threads"]))
if "seed_baseline" in med:
    print("old script's algorithm / replay: %.0fx slower" % (med["seed_baseline"] / med["lw_literal"]))
if "fail2ban" in med:
    print("fail2ban-regex / replay: %.0fx slower" % (med["fail2ban"] / med["lw_literal"]))
if "before_literal" in med:
    print("old rule alone, this build / BEFORE build: %.3f (1M-line file)" % (med["lw_literal"] / med["before_literal"]))
if "before_stress" in med:
    print("old rule alone, this build / BEFORE build: %.3f (stress file: every line an event, 1M clients)" % (med["lw_stress"] / med["before_stress"]))
rss = os.path.join(out, "stress.rss")
if os.path.exists(rss):
    print("stress file peak RSS: %.0f MB (target < 150); %s" % (int(open(rss).read().split()[-1]) / 1024, open(os.path.join(out, "stress.summary")).read().strip()))
PY
