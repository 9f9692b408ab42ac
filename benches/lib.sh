# Shared by the benchmark scripts (sourced, not run).

# Builds the workspace; sets LW (logwarden, or the one given) and LG (loadgen).
build() {
  cargo build --release --quiet --manifest-path "$HERE/Cargo.toml" --workspace
  LW=${LW:-$HERE/target/release/logwarden}
  LG=$HERE/target/release/loadgen
}

# write_config DIR THRESHOLD [TOML]: DIR/logwarden.toml following DIR/access.log
# from its beginning, one rule on today_download at THRESHOLD, alerts to
# DIR/alerts.jsonl, state in DIR/state, and TOML appended.
write_config() {
  cat > "$1/logwarden.toml" <<TOML
[source]
path = "$1/access.log"
start_at = "beginning"
[[rule]]
contains = "today_download"
threshold = $2
[[output]]
type = "jsonl"
path = "$1/alerts.jsonl"
[state]
dir = "$1/state"
${3:-}
TOML
}

# time_it NAME COMMAND…: hyperfine's timings of COMMAND (RUNS runs, no
# shell) to $OUT/NAME.json.
time_it() {
  local name=$1; shift
  hyperfine -N --style none --runs "$RUNS" --warmup 1 --output pipe --export-json "$OUT/$name.json" "$*" >/dev/null
}
