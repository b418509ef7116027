#!/usr/bin/env bash
# Memory floor: RSS per idle logged-in WebSocket connection of chat-worker next to a bare
# socketioxide server with the worker's runtime and settings and no application code
# (sio-floor), in one run, each on a freshly started process, the same chat-bench client.
# With OLD_WORKER=path, a previous chat-worker build is measured in the same run too. And a
# design option: eio-single, one task per connection speaking just enough Engine.IO. With
# LEAN_BIN=folder (what bench/build-lean.sh prints), design option 3 too: sio-floor and
# chat-worker built against engineioxide with bench/engineioxide-lean.patch.
#
#   OUT=bench/runs/NAME bench/floor.sh          # sizes: SIZES="3000 10000" (per process)
#
# 10,000 per process is what each of the two workers holds in run.sh's 20,000 level. One
# redis-server (loopback, no persistence) serves the chat-workers. Everything started here
# is stopped by pid on exit. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
OUT=${OUT:-$ROOT/bench/results/floor-$(date -u +%Y%m%d-%H%M%S)}
SIZES=${SIZES:-3000 10000}
OLD_WORKER=${OLD_WORKER:-}
LEAN_BIN=${LEAN_BIN:-}
mkdir -p "$OUT"
log() { echo "floor: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=bench/servers.sh
source "$ROOT/bench/servers.sh"
for b in redis-server redis-cli python3; do command -v "$b" >/dev/null || die "$b not found"; done
cargo build --release -q -p chat -p chat-bench --bins
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --logfile "$OUT/redis.log" &
PIDS+=($!)
for ((i = 0; i < 50; i++)); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

measure() { # name size command...
  local name=$1 n=$2; shift 2
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  start_server "$name-$n" "$@"
  sleep 1
  local before after
  before=$(rss_kb "$SERVER_PID")
  rm -f "$OUT/$name-$n.ready"
  "$BIN/chat-bench" --url "ws://127.0.0.1:$SERVER_PORT" --connections "$n" --idle --duration 10 \
    --connect-timeout 90 --user-prefix "$name$n-" --ready-file "$OUT/$name-$n.ready" \
    --json -q >"$OUT/$name-$n.json" 2>"$OUT/$name-$n.bench.err" &
  local bench=$!
  while [[ ! -f "$OUT/$name-$n.ready" ]] && kill -0 "$bench" 2>/dev/null; do sleep 0.2; done
  sleep 4 # settle: pings, allocator
  after=$(rss_kb "$SERVER_PID")
  wait "$bench" || true
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  python3 - "$OUT" "$name" "$n" "$before" "$after" <<'PY'
import json, sys
out, name, n, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
d = json.load(open(f"{out}/{name}-{n}.json"))
logged = d["connect"]["logged_in"]
r = {"server": name, "connections": n, "logged_in": logged, "failed": d["connect"]["failed"],
     "rss_kb_before": before, "rss_kb_held": after,
     "kb_per_conn": round((after - before) / logged, 2) if logged else None}
json.dump(r, open(f"{out}/{name}-{n}.result.json", "w"))
print(json.dumps(r))
PY
}

worker() { echo "$1" --id 0 --port 0 --host 127.0.0.1 --redis "redis://127.0.0.1:$REDIS_PORT" \
  --max-connections 30000; }
{
  for n in $SIZES; do
    measure sio-floor "$n" "$BIN/sio-floor" 0
    measure eio-single "$n" "$BIN/eio-single" 0
    # shellcheck disable=SC2046
    measure chat-worker "$n" $(worker "$BIN/chat-worker")
    if [[ -n "$LEAN_BIN" ]]; then
      measure sio-floor-lean "$n" "$LEAN_BIN/sio-floor" 0
      # shellcheck disable=SC2046
      measure chat-worker-lean "$n" $(worker "$LEAN_BIN/chat-worker")
    fi
    if [[ -n "$OLD_WORKER" ]]; then
      # shellcheck disable=SC2046
      measure chat-worker-old "$n" $(worker "$OLD_WORKER")
    fi
  done
} | tee "$OUT/results.jsonl"
log "results in $OUT/results.jsonl"
