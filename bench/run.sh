#!/usr/bin/env bash
# Side-by-side benchmark: the Rust cluster (chatctl) vs the seed's design (Node.js socket.io 4 +
# @socket.io/redis-adapter), on this machine, in one run, with the same Redis (one redis-server
# started here, flushed between the two), the same haproxy.cfg (the one chatctl renders, reused
# for the Node processes), the same worker count and ports, and the same client (chat-bench).
#
#   bench/run.sh                 # full run (about 10 minutes on 2 cores)
#   QUICK=1 bench/run.sh         # small sizes, a couple of minutes: checks the script itself
#   ONLY=rust bench/run.sh       # one side only (rust|node)
#
# Knobs (environment): WORKERS (default: cores), PUBLIC_PORT 18080, BASE_PORT 31001,
# REDIS_PORT 6391, FIXED_RATE 2000 msg/s, FIXED_CONNS 1000, FIXED_SECS 20, SWEEP_CONNS 1000,
# SWEEP_SECS 10, SWEEP_START 2000, SWEEP_FACTOR 1.25, SWEEP_MAX 40000, IDLE_SMALL 2000,
# IDLE_LARGE 20000, PROXY_MAX 9000, MAX_CONNS 38000, OUT (results folder), PHASES ("idle fixed
# sweep": a subset reruns only those phases into an existing OUT), RUST_TOML (lines appended to
# the Rust cluster's chat.toml, e.g. $'[cluster]\ncoalesce_us = 0' to compare settings).
#
# Everything it starts it stops by pid (trap on exit). Loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# BIN: another build's binaries (chatctl, chat-worker, chat-bench), used as they are.
BIN=${BIN:-$ROOT/target/release}
NCPU=$(nproc)
WORKERS=${WORKERS:-$NCPU}
PUBLIC_PORT=${PUBLIC_PORT:-18080}
BASE_PORT=${BASE_PORT:-31001}
REDIS_PORT=${REDIS_PORT:-6391}
ONLY=${ONLY:-}
if [[ -n "${QUICK:-}" ]]; then
  FIXED_RATE=${FIXED_RATE:-1000}; FIXED_CONNS=${FIXED_CONNS:-200}; FIXED_SECS=${FIXED_SECS:-5}
  SWEEP_CONNS=${SWEEP_CONNS:-200}; SWEEP_SECS=${SWEEP_SECS:-4}; SWEEP_START=${SWEEP_START:-2000}
  SWEEP_FACTOR=${SWEEP_FACTOR:-2}; SWEEP_MAX=${SWEEP_MAX:-16000}
  IDLE_SMALL=${IDLE_SMALL:-500}; IDLE_LARGE=${IDLE_LARGE:-2000}; PROXY_MAX=${PROXY_MAX:-1000}
  MAX_CONNS=${MAX_CONNS:-3000}
fi
FIXED_RATE=${FIXED_RATE:-2000}; FIXED_CONNS=${FIXED_CONNS:-1000}; FIXED_SECS=${FIXED_SECS:-20}
SWEEP_CONNS=${SWEEP_CONNS:-1000}; SWEEP_SECS=${SWEEP_SECS:-10}; SWEEP_START=${SWEEP_START:-2000}
SWEEP_FACTOR=${SWEEP_FACTOR:-1.25}; SWEEP_MAX=${SWEEP_MAX:-40000}
IDLE_SMALL=${IDLE_SMALL:-2000}; IDLE_LARGE=${IDLE_LARGE:-20000}; PROXY_MAX=${PROXY_MAX:-9000}
MAX_CONNS=${MAX_CONNS:-38000}
PHASES=${PHASES:-idle fixed sweep}
OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Raise the fd limit to the hard limit (HAProxy's maxconn and each process's connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "fd limit $(ulimit -n), $NCPU cores, $WORKERS workers, results in $OUT"

for b in redis-server redis-cli haproxy node npm curl taskset python3; do
  command -v "$b" >/dev/null || die "$b not found (apt-get install redis-server haproxy nodejs npm curl util-linux python3)"
done

# ---------------------------------------------------------------------------- cleanup
REDIS_PID=""; NODE_PIDS=(); HAPROXY_NODE_PID=""; RUST_STATE=""; BENCH_PIDS=()
cleanup() {
  set +e
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [[ -n "$RUST_STATE" ]] && "$BIN/chatctl" --state-dir "$RUST_STATE" down >/dev/null 2>&1
  [[ -n "$HAPROXY_NODE_PID" ]] && kill "$HAPROXY_NODE_PID" 2>/dev/null
  for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [[ -n "$REDIS_PID" ]] && kill "$REDIS_PID" 2>/dev/null
  sleep 0.5
  for p in "${NODE_PIDS[@]}" $HAPROXY_NODE_PID $REDIS_PID; do
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- build
log "building (release) and installing the Node baseline's packages"
[[ "$BIN" != "$ROOT/target/release" ]] || (cd "$ROOT" && cargo build --release -q -p chat -p chatctl -p chat-bench)
(cd "$ROOT/bench/node-baseline" && { [[ -d node_modules/socket.io && -d node_modules/@socket.io/redis-adapter ]] || npm ci --no-audit --no-fund --silent; })

# ---------------------------------------------------------------------------- helpers
# /proc helpers: RSS (kB) summed over pids; a process's children.
rss_kb() { local s=0 p v; for p in "$@"; do v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); s=$((s + ${v:-0})); done; echo "$s"; }
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true; }
wait_http() { # url, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# Waits (at most QUIET_WAIT s, default 120) until the machine is quiet — less than 15 % of one
# core busy over 2 s — so other work (a build, a test suite) does not skew a phase. Each phase's
# JSON also records the CPU that processes other than ours took while it was measured.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
wait_quiet() {
  local deadline=$((SECONDS + ${QUIET_WAIT:-120})) a b hz
  hz=$(getconf CLK_TCK)
  while :; do
    a=$(busy_ticks); sleep 2; b=$(busy_ticks)
    if (( (b - a) * 100 / hz < 30 )); then return 0; fi # < 30 % of a core over 2 s = 15 %
    if (( SECONDS >= deadline )); then log "machine still busy ($(( (b - a) * 50 / hz ))% of a core): measuring anyway"; return 0; fi
    log "machine busy ($(( (b - a) * 50 / hz ))% of a core, not ours?): waiting"
  done
}

start_redis() {
  mkdir -p "$OUT/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
    --appendfsync everysec --dir "$OUT/redis" --logfile "$OUT/redis/redis.log" &
  REDIS_PID=$!
  local i
  for ((i = 0; i < 50; i++)); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "redis-server did not start (see $OUT/redis/redis.log)"
}

# Globals set by the start functions: IMPL, WORKER_PIDS (array), PROXY_PIDS (array).
WATCH=()
set_watch() {
  WATCH=()
  local i=0 p
  for p in "${WORKER_PIDS[@]}"; do WATCH+=(--watch "worker$i=$p"); i=$((i + 1)); done
  i=0
  for p in "${PROXY_PIDS[@]}"; do WATCH+=(--watch "haproxy$i=$p"); i=$((i + 1)); done
  WATCH+=(--watch "redis=$REDIS_PID")
}
direct_urls() {
  local i u=""
  for ((i = 0; i < WORKERS; i++)); do u+="${u:+,}ws://127.0.0.1:$((BASE_PORT + i))"; done
  echo "$u"
}

start_rust() {
  IMPL=rust
  RUST_STATE=$OUT/rust-state
  printf '[limits]\nmessages_per_second = 100000\nmax_connections_per_worker = 30000\n' >"$OUT/chat.toml"
  [[ -z "${RUST_TOML:-}" ]] || printf '%s\n' "$RUST_TOML" >>"$OUT/chat.toml"
  "$BIN/chatctl" --state-dir "$RUST_STATE" up --workers "$WORKERS" --port "$PUBLIC_PORT" \
    --base-port "$BASE_PORT" --bind 127.0.0.1 --redis "redis://127.0.0.1:$REDIS_PORT" \
    --config "$OUT/chat.toml" --detach >&2
  "$BIN/chatctl" --state-dir "$RUST_STATE" status --json >"$OUT/rust-status.json"
  mapfile -t WORKER_PIDS < <(python3 -c 'import json,sys; [print(w["pid"]) for w in json.load(open(sys.argv[1]))["workers"]]' "$OUT/rust-status.json")
  local master
  master=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["haproxy"]["pid"])' "$OUT/rust-status.json")
  cp "$RUST_STATE/haproxy.cfg" "$OUT/haproxy.cfg"
  wait_http "http://127.0.0.1:$PUBLIC_PORT/health" 10 || die "HAProxy does not answer"
  mapfile -t PROXY_PIDS < <(echo "$master"; children "$master")
  set_watch
  log "rust up: workers ${WORKER_PIDS[*]}, haproxy ${PROXY_PIDS[*]}, redis $REDIS_PID"
}
stop_rust() {
  "$BIN/chatctl" --state-dir "$RUST_STATE" down >&2 || true
  RUST_STATE=""
}

start_node() {
  IMPL=node
  [[ -f "$OUT/haproxy.cfg" ]] || die "no haproxy.cfg from the rust run to reuse (run with ONLY= unset first)"
  NODE_PIDS=()
  local i
  for ((i = 0; i < WORKERS; i++)); do
    PORT=$((BASE_PORT + i)) REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
      taskset -c $((i % NCPU)) node "$ROOT/bench/node-baseline/server.js" >"$OUT/node-$i.log" 2>&1 &
    NODE_PIDS+=($!)
  done
  for ((i = 0; i < WORKERS; i++)); do
    wait_http "http://127.0.0.1:$((BASE_PORT + i))/health" 20 || die "node worker $i not healthy (see $OUT/node-$i.log)"
  done
  # The same config chatctl rendered; only its admin socket moves out of the rust state dir.
  sed "s#stats socket [^ ]*#stats socket $OUT/haproxy-node.sock#" "$OUT/haproxy.cfg" >"$OUT/haproxy-node.cfg"
  haproxy -c -q -f "$OUT/haproxy-node.cfg" || die "haproxy-node.cfg does not validate"
  haproxy -f "$OUT/haproxy-node.cfg" >"$OUT/haproxy-node.log" 2>&1 &
  HAPROXY_NODE_PID=$!
  wait_http "http://127.0.0.1:$PUBLIC_PORT/health" 10 || die "HAProxy (node) does not answer"
  sleep 1.5 # both servers UP in HAProxy's checks
  WORKER_PIDS=("${NODE_PIDS[@]}")
  mapfile -t PROXY_PIDS < <(echo "$HAPROXY_NODE_PID"; children "$HAPROXY_NODE_PID")
  set_watch
  log "node up: workers ${WORKER_PIDS[*]}, haproxy ${PROXY_PIDS[*]}, redis $REDIS_PID"
}
stop_node() {
  kill "$HAPROXY_NODE_PID" 2>/dev/null || true
  local p
  for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NODE_PIDS[@]}" "$HAPROXY_NODE_PID"; do wait "$p" 2>/dev/null || true; done
  NODE_PIDS=(); HAPROXY_NODE_PID=""
}

# Idle: N connections held by ceil(N/10000) chat-bench processes (one process cannot hold more
# than its fd limit), through URL(s); RSS of the workers before and while held.
idle_run() { # name, connections, urls
  local name=$1 n=$2 urls=$3 procs per i before after proxy_before proxy_after
  procs=$(((n + 9999) / 10000)); per=$(((n + procs - 1) / procs))
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  wait_quiet
  before=$(rss_kb "${WORKER_PIDS[@]}"); proxy_before=$(rss_kb "${PROXY_PIDS[@]}")
  BENCH_PIDS=()
  for ((i = 0; i < procs; i++)); do
    rm -f "$OUT/$IMPL-$name-$i.ready"
    "$BIN/chat-bench" --url "$urls" --connections "$per" --idle --duration 12 \
      --connect-timeout 90 --user-prefix "$IMPL$name$i-" --ready-file "$OUT/$IMPL-$name-$i.ready" \
      --json -q >"$OUT/$IMPL-$name-$i.json" 2>"$OUT/$IMPL-$name-$i.err" &
    BENCH_PIDS+=($!)
  done
  for ((i = 0; i < procs; i++)); do
    while [[ ! -f "$OUT/$IMPL-$name-$i.ready" ]] && kill -0 "${BENCH_PIDS[$i]}" 2>/dev/null; do sleep 0.2; done
  done
  sleep 4 # let the servers settle (pings, allocator)
  after=$(rss_kb "${WORKER_PIDS[@]}"); proxy_after=$(rss_kb "${PROXY_PIDS[@]}")
  for p in "${BENCH_PIDS[@]}"; do wait "$p" || true; done
  BENCH_PIDS=()
  python3 - "$OUT" "$IMPL" "$name" "$procs" "$before" "$after" "$proxy_before" "$proxy_after" <<'EOF'
import json, sys
out, impl, name, procs, before, after, pb, pa = sys.argv[1:3] + [sys.argv[3]] + [int(x) for x in sys.argv[4:]]
held = logged = failed = 0
for i in range(procs):
    try:
        d = json.load(open(f"{out}/{impl}-{name}-{i}.json"))
    except Exception:
        continue
    held += d["connect"]["held_at_end"]; logged += d["connect"]["logged_in"]; failed += d["connect"]["failed"]
r = {"logged_in": logged, "held": held, "failed": failed, "worker_rss_kb_before": before,
     "worker_rss_kb_held": after, "haproxy_rss_kb_before": pb, "haproxy_rss_kb_held": pa,
     "worker_kb_per_conn": round((after - before) / logged, 2) if logged else None}
json.dump(r, open(f"{out}/{impl}-{name}.json", "w"))
print(f"{impl} {name}: {r}", file=sys.stderr)
EOF
}

fixed_run() {
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  wait_quiet
  log "$IMPL: fixed load $FIXED_RATE msg/s, $FIXED_CONNS connections, ${FIXED_SECS}s"
  "$BIN/chat-bench" --url "http://127.0.0.1:$PUBLIC_PORT" --connections "$FIXED_CONNS" \
    --rate "$FIXED_RATE" --duration "$FIXED_SECS" --user-prefix "${IMPL}fx-" "${WATCH[@]}" \
    --json >"$OUT/$IMPL-fixed.json" 2>"$OUT/$IMPL-fixed.err" || true
  tail -n 2 "$OUT/$IMPL-fixed.err" >&2 || true
}

sweep_run() {
  local rate=$SWEEP_START step=0 ok
  rm -f "$OUT/$IMPL"-sweep-*.json
  while :; do
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    wait_quiet
    log "$IMPL: sweep $rate msg/s"
    "$BIN/chat-bench" --url "http://127.0.0.1:$PUBLIC_PORT" --connections "$SWEEP_CONNS" \
      --rate "$rate" --duration "$SWEEP_SECS" --user-prefix "${IMPL}sw$step-" "${WATCH[@]}" \
      --json -q >"$OUT/$IMPL-sweep-$step.json" 2>"$OUT/$IMPL-sweep-$step.err" || true
    ok=$(python3 - "$OUT/$IMPL-sweep-$step.json" "$rate" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("no"); sys.exit()
rate = float(sys.argv[2])
m, t, l = d["messages"], d["throughput"], d["latency_ms"]
good = l["p99"] < 50 and t["delivered_per_s"] >= 0.95 * rate and m["ack_errors"] == 0
print(f"  delivered {t['delivered_per_s']:.0f}/s p99 {l['p99']} ms lost {m['lost']} -> {'ok' if good else 'over'}", file=sys.stderr)
print("yes" if good else "no")
EOF
)
    step=$((step + 1))
    [[ "$ok" == yes ]] || break
    rate=$(python3 -c "print(int($rate * $SWEEP_FACTOR))")
    [[ "$rate" -le "$SWEEP_MAX" ]] || break
  done
}

# Each idle level runs on freshly started workers (RSS deltas are not blurred by memory an
# earlier phase left in the allocator); the message phases share one start.
measure() { # rust|node
  local impl=$1
  if [[ " $PHASES " == *" idle "* ]]; then
  log "$impl: idle $IDLE_SMALL through HAProxy"
  "start_$impl"; idle_run idle-small "$IDLE_SMALL" "http://127.0.0.1:$PUBLIC_PORT"; "stop_$impl"
  log "$impl: idle $IDLE_LARGE directly to the workers"
  "start_$impl"; idle_run idle-large "$IDLE_LARGE" "$(direct_urls)"; "stop_$impl"
  log "$impl: idle $PROXY_MAX through HAProxy (its maxconn is sized from the fd limit)"
  "start_$impl"; idle_run idle-proxy "$PROXY_MAX" "http://127.0.0.1:$PUBLIC_PORT"; "stop_$impl"
  log "$impl: idle $MAX_CONNS directly to the workers"
  "start_$impl"; idle_run idle-max "$MAX_CONNS" "$(direct_urls)"; "stop_$impl"
  fi
  "start_$impl"
  [[ " $PHASES " != *" fixed "* ]] || fixed_run
  [[ " $PHASES " != *" sweep "* ]] || sweep_run
  "stop_$impl"
}

# ---------------------------------------------------------------------------- run
start_redis
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ //') x $NCPU"
  echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "fd limit: $(ulimit -n)"
  echo "haproxy: $(haproxy -v | head -1)"
  echo "redis: $(redis-server --version)"
  echo "node: $(node --version); socket.io $(node -p 'require("'"$ROOT"'/bench/node-baseline/node_modules/socket.io/package.json").version'); redis-adapter $(node -p 'require("'"$ROOT"'/bench/node-baseline/node_modules/@socket.io/redis-adapter/package.json").version')"
  echo "rustc: $(rustc --version)"
  echo "workers: $WORKERS"
} >"$OUT/machine.txt"

if [[ "$ONLY" != node ]]; then measure rust; fi
if [[ "$ONLY" != rust ]]; then measure node; fi

python3 "$ROOT/bench/report.py" "$OUT" | tee "$OUT/table.md"
log "done: $OUT"
