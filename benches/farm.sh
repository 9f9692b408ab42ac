#!/usr/bin/env bash
# A web farm on this machine: NODES (default 4) `logwarden run`, each
# following its own log, against one local redis-server. `loadgen farm`
# writes LINES lines (default 2M, 2 % of them hits) spread round robin over
# the nodes' logs; each node's share is copied beside its log beforehand and
# renamed onto it, all at once (as logrotate's `create` replaces a log), so
# the time measured is the nodes' own. (Appending with `cat` put the
# writer's cost in the measure, and on this VM it varies eightfold: four
# cats wrote 1.3 GB in 0.21-0.23 s right after as much was deleted, in
# 1.6-2.0 s when the page cache had to grow; the run's second half was the
# slower in every run tried, whichever went first.) Measured twice, without
# [cluster] and with it: how long each node took to decide its last line (a
# probe client's alert on that node), lines/s per node and in all, the
# nodes' CPU for them;
# with the farm also the Redis round trips (the nodes' summaries), commands
# (Redis's INFO) per second and CPU, the least time the nodes' and Redis's
# CPU allow on this machine's cores, and the alert latency through the farm
# (loadgen probe, 200 alerts on one node). Goals: a node with [cluster]
# follows >= 0.7x as many lines/s as without; p99 alert latency <= 100 ms.
#
#   benches/farm.sh                # about a minute
#   NODES=2 LINES=4000000 benches/farm.sh
#   PIN=1 NODES=1 LINES=500000 benches/farm.sh   # Redis on the last core, the
#                                  # nodes on the others (as if Redis had a machine of its own)
#   RULES=$'[[rule]]\nname = "scan"\nstatus = [404]\ndistinct = "path"\nthreshold = 20' benches/farm.sh
#                                  # more rules in every node's configuration
#   RATE=20000 LINES=400000 benches/farm.sh
#                                  # live instead: the balancer's stream written at RATE lines/s
#                                  # (wall clock) while the nodes follow; what that costs the
#                                  # nodes and Redis, and how far behind the nodes end
#
# Needs: redis-server (apt-get install redis-server), python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/lwfarm}
NODES=${NODES:-4}
LINES=${LINES:-2000000}
RATE=${RATE:-0}
# With PIN=1, taskset keeps Redis and the nodes on separate cores.
REDIS_CPUS="" NODE_CPUS=""
if [ "${PIN:-0}" = 1 ]; then
  last=$(($(nproc) - 1))
  REDIS_CPUS="taskset -c $last" NODE_CPUS="taskset -c 0-$((last > 0 ? last - 1 : 0))"
fi
command -v redis-server >/dev/null || { echo "farm.sh: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
. "$HERE/benches/lib.sh"
build
rm -rf "$OUT" && mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$REDIS_CPUS redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --logfile "$OUT/redis.log" &
REDIS=$!
PIDS=""
trap 'kill $REDIS $PIDS 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

[ "$RATE" = 0 ] && "$LG" farm --nodes "$NODES" --path "$OUT/gen/web{n}/access.log" --lines "$LINES" 2>/dev/null

redis_calls() {  # script calls Redis has run (EVALSHA and EVAL), and their µs
  redis-cli -p "$PORT" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_eval\(sha\)\{0,1\}:calls=\([0-9]*\),usec=\([0-9]*\).*/\2 \3/p' |
    awk '{ t += $1; u += $2 } END { print t + 0, u + 0 }'
}
nodes_cpu() {  # CPU seconds the running nodes have used
  local ticks=0 p
  for p in $PIDS; do
    ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
redis_cpu() {  # CPU seconds Redis has used
  redis-cli -p "$PORT" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { print t + 0 }'
}

# flood DIR: every node's flood appears at once, renamed onto the log it
# follows; prints the time of the first rename.
flood() {
  python3 - "$1" "$NODES" <<'PY'
import os, sys, time
out, nodes = sys.argv[1], int(sys.argv[2])
start = time.time()
for n in range(1, nodes + 1):
    os.rename("%s/web%d/flood.log" % (out, n), "%s/web%d/access.log" % (out, n))
print("%f" % start)
PY
}

# run_farm LABEL CLUSTER(0|1): starts the nodes, appends the logs, waits for
# each node's probe alert, prints the figures, and leaves the nodes running.
run_farm() {
  local label=$1 cluster=$2 n d start
  PIDS=""
  for n in $(seq "$NODES"); do
    d=$OUT/$label/web$n
    mkdir -p "$d"
    local extra=""
    [ "$cluster" = 1 ] && extra="[cluster]
redis = \"redis://127.0.0.1:$PORT\"
node = \"web$n\"
prefix = \"$label\""
    write_config "$d" 10 "$extra
${RULES:-}"
    : > "$d/access.log"
    [ "$RATE" = 0 ] && cp "$OUT/gen/web$n/access.log" "$d/flood.log"
    LOGWARDEN_LOG=info $NODE_CPUS "$LW" -c "$d/logwarden.toml" run 2> "$d/daemon.log" > /dev/null &
    PIDS="$PIDS $!"
  done
  for n in $(seq "$NODES"); do
    for _ in $(seq 200); do grep -q "Following" "$OUT/$label/web$n/daemon.log" && break; sleep 0.05; done
  done
  sync  # the floods' pages written to disk now, not while the nodes read them
  local commands_before cpu_before nodes_before
  commands_before=$(redis_calls)
  cpu_before=$(redis_cpu)
  nodes_before=$(nodes_cpu)
  if [ "$RATE" = 0 ]; then
    start=$(flood "$OUT/$label")
  else
    start=$(date +%s.%N)
    "$LG" farm --nodes "$NODES" --path "$OUT/$label/web{n}/access.log" --lines "$LINES" \
      --rate "$RATE" --now > /dev/null 2>&1
    WRITTEN=$(date +%s.%N)
  fi
  for n in $(seq "$NODES"); do
    d=$OUT/$label/web$n
    ( "$LG" probe --path "$d/access.log" --alerts "$d/alerts.jsonl" --count 1 --first $((n * 1000)) \
        --timeout-ms 300000 > /dev/null && date +%s.%N > "$d/done" ) &
  done
  for n in $(seq "$NODES"); do
    for _ in $(seq 6000); do [ -s "$OUT/$label/web$n/done" ] && break; sleep 0.05; done
  done
  local commands_after cpu_after nodes_after
  commands_after=$(redis_calls)
  cpu_after=$(redis_cpu)
  nodes_after=$(nodes_cpu)
  python3 - "$OUT/$label" "$NODES" "$start" "$commands_before" "$commands_after" "$cluster" "$cpu_before" "$cpu_after" \
    "$nodes_before" "$nodes_after" "$(nproc)" "${WRITTEN:-0}" <<'PY'
import os, sys
out, nodes, start, cluster = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[6] == "1"
written = float(sys.argv[12])
(cb, ub), (ca, ua) = [map(int, a.split()) for a in sys.argv[4:6]]
cpu = float(sys.argv[8]) - float(sys.argv[7])
nodes_cpu, cores = float(sys.argv[10]) - float(sys.argv[9]), int(sys.argv[11])
total, slowest = 0, 0.0
for n in range(1, nodes + 1):
    d = os.path.join(out, "web%d" % n)
    lines = sum(1 for _ in open(os.path.join(d, "access.log"), "rb"))
    done = float(open(os.path.join(d, "done")).read())
    secs = done - start
    total += lines
    slowest = max(slowest, secs)
    if written:  # live: the writer sets the pace, so lines/s would only restate it
        print("  web%d: %d lines; the probe's alert %.0f ms after the writer ended" % (n, lines, (done - written) * 1000))
    else:
        print("  web%d: %d lines in %.2f s: %.0f lines/s" % (n, lines, secs, lines / secs))
if not written:
    print("  farm: %d lines in %.2f s: %.0f lines/s" % (total, slowest, total / slowest))
with open(os.path.join(out, "rate"), "w") as f:
    f.write("%f\n" % (total / slowest / nodes))
with open(os.path.join(out, "cpu"), "w") as f:
    f.write("%f %f\n" % (nodes_cpu, cpu))
print("  the nodes used %.2f s of CPU for these lines (%.0f %% of a core)" % (nodes_cpu, 100 * nodes_cpu / slowest))
if cluster:
    print("  Redis script calls: %d, %.0f per second, running %.2f s; Redis used %.2f s of CPU (%.0f %% of a core)" % (ca - cb, (ca - cb) / slowest, (ua - ub) / 1e6, cpu, 100 * cpu / slowest))
    # The farm's work in all, spread perfectly over the cores, takes at
    # least this long: a floor under the time above on a shared machine.
    print("  nodes and Redis: %.2f s of CPU, at least %.2f s on %d cores" % (nodes_cpu + cpu, (nodes_cpu + cpu) / cores, cores))
PY
}

stop_farm() {  # LABEL: stops the nodes, prints their peak memory and round trips
  local p
  for p in $PIDS; do awk '/^VmHWM/ { print $2 }' "/proc/$p/status"; done |
    awk '{ if ($1 > m) m = $1 } END { printf "  the largest node'"'"'s peak resident memory: %.0f MB\n", m / 1024 }'
  kill -TERM $PIDS; wait $PIDS 2>/dev/null || true
  PIDS=""
  { grep -h "round trips" "$OUT/$1"/web*/daemon.log || true; } | sed 's/.*round trips \([0-9]*\).*/\1/' |
    awk '{ t += $1 } END { if (NR) printf "  Redis round trips: %d in all (the nodes\x27 summaries)\n", t }'
}

echo "== without [cluster]"
run_farm alone 0
stop_farm alone
echo "== with [cluster] (one local Redis)"
run_farm farm 1
echo "== alert latency through the farm (web1, 200 alerts)"
"$LG" probe --path "$OUT/farm/web1/access.log" --alerts "$OUT/farm/web1/alerts.jsonl" --count 200 --first 50000
stop_farm farm
if [ "$RATE" = 0 ]; then
  python3 - "$(cat "$OUT/alone/rate")" "$(cat "$OUT/farm/rate")" <<'PY'
import sys
alone, farm = float(sys.argv[1]), float(sys.argv[2])
r = farm / alone
print("a node with [cluster] follows %.2fx the lines/s of one without (target >= 0.7x: %s)" % (r, "met" if r >= 0.7 else "MISSED"))
PY
else
  # Live, the writer sets the pace: what the farm costs is CPU.
  python3 - $(cat "$OUT/alone/cpu") $(cat "$OUT/farm/cpu") <<'PY'
import sys
a_nodes, _, f_nodes, f_redis = map(float, sys.argv[1:5])
print("live: with [cluster] the nodes used %.2fx the CPU of the nodes without, and with Redis %.2fx" % (f_nodes / a_nodes, (f_nodes + f_redis) / a_nodes))
PY
fi
