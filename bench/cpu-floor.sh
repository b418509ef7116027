#!/usr/bin/env bash
# CPU floor: CPU per delivered direct message of one chat-worker next to sio-chat-floor (the
# same frames through the same socketioxide, runtime and settings, the chat held in memory:
# no Redis, no inbox, no limits) and one process of the Node baseline (bench/node-baseline),
# alternated in one run, each freshly started, the same chat-bench load straight to the
# process (no HAProxy). Each figure is the process's own CPU; the Redis CPU of the worker
# and of Node is reported beside it.
#
#   OUT=bench/runs/NAME bench/cpu-floor.sh      # PASSES=3 RATE=2000 CONNS=1000 SECS=20
#
# One redis-server (loopback, no persistence) serves the chat-worker. Everything started
# here is stopped by pid on exit. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
OUT=${OUT:-$ROOT/bench/results/cpu-floor-$(date -u +%Y%m%d-%H%M%S)}
PASSES=${PASSES:-3}
RATE=${RATE:-2000}
CONNS=${CONNS:-1000}
SECS=${SECS:-20}
mkdir -p "$OUT"
log() { echo "cpu-floor: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=bench/servers.sh
source "$ROOT/bench/servers.sh"
for b in redis-server redis-cli python3 node npm; do command -v "$b" >/dev/null || die "$b not found"; done
cargo build --release -q -p chat -p chat-bench --bins
(cd "$ROOT/bench/node-baseline" && { [[ -d node_modules/socket.io && -d node_modules/@socket.io/redis-adapter ]] || npm ci --no-audit --no-fund --silent; })
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --logfile "$OUT/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for ((i = 0; i < 50; i++)); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# Starts the Node baseline on a free port (it prints no address; its /health answers).
start_node() {
  local name=$1 i
  SERVER_PORT=$(free_port)
  PORT=$SERVER_PORT REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$ROOT/bench/node-baseline/server.js" \
    >"$OUT/$name.out" 2>"$OUT/$name.err" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  for ((i = 0; i < 100; i++)); do
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$SERVER_PORT/health', timeout=1)" \
      2>/dev/null && return 0
    sleep 0.2
  done
  die "$name did not start (see $OUT/$name.err)"
}

measure() { # name command... (command "node" starts the Node baseline)
  local name=$1; shift
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  if [[ "$1" == node ]]; then start_node "$name"; else start_server "$name" "$@"; fi
  log "$name: $RATE msg/s, $CONNS connections, ${SECS}s"
  "$BIN/chat-bench" --url "ws://127.0.0.1:$SERVER_PORT" --connections "$CONNS" --rate "$RATE" \
    --duration "$SECS" --user-prefix "$name-" --watch "server=$SERVER_PID" \
    --watch "redis=$REDIS_PID" --json -q >"$OUT/$name.json" 2>"$OUT/$name.bench.err" || true
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
}

for ((pass = 1; pass <= PASSES; pass++)); do
  measure "floor-$pass" "$BIN/sio-chat-floor" 0
  measure "worker-$pass" "$BIN/chat-worker" --id 0 --port 0 --host 127.0.0.1 \
    --redis "redis://127.0.0.1:$REDIS_PORT" --max-connections 30000
  measure "node-$pass" node
done
python3 - "$OUT" "$PASSES" <<'PY' | tee "$OUT/table.md"
import json, sys
out, passes = sys.argv[1], int(sys.argv[2])
def row(name):
    d = json.load(open(f"{out}/{name}.json"))
    p, t = d["processes"], d["throughput"]
    n = t["delivered_per_s"] * t["run_seconds"] / 1000
    return (p["server"]["cpu_ms"] / n, p["redis"]["cpu_ms"] / n, d["latency_ms"]["p50"],
            d["latency_ms"]["p99"], d["messages"]["lost"], d["messages"]["delivered_receipts"])
print("| pass | sio-chat-floor | chat-worker | Node | floor / worker | Node / worker | Node / floor | Redis: worker / Node | p50 floor / worker / Node (ms) | p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|")
for i in range(1, passes + 1):
    f, w, n = row(f"floor-{i}"), row(f"worker-{i}"), row(f"node-{i}")
    print(f"| {i} | {f[0]:.1f} | {w[0]:.1f} | {n[0]:.1f} | {f[0] / w[0]:.0%} | {n[0] / w[0]:.2f}× | {n[0] / f[0]:.2f}× | {w[1]:.1f} / {n[1]:.1f} "
          f"| {f[2]:.2f} / {w[2]:.2f} / {n[2]:.2f} | {f[3]:.2f} / {w[3]:.2f} / {n[3]:.2f} | {f[4]} / {w[4]} / {n[4]} |")
print("\n(CPU-ms per 1,000 delivered.)")
PY
log "results in $OUT"
