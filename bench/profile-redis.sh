#!/usr/bin/env bash
# Callgrind profile of redis-server serving one release chat-worker under a small fixed load:
# where Redis spends its time per message (the Lua machinery, the commands, the event loop).
# One worker, its own redis-server (AOF everysec, like chatctl's) under valgrind, chat-bench
# direct to the worker; counters are zeroed when chat-bench enters its measured phase.
#   OUT=bench/runs/NAME bench/profile-redis.sh [CONNS] [RATE] [SECS]
# writes redis-callgrind-self.txt, redis-callgrind-inclusive.txt and profile-bench.json.
# The rate must stay low (default 100 msg/s): Redis runs about 50 times slower under callgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=${OUT:?set OUT to the run folder the profile goes into}
mkdir -p "$HERE"
CONNS=${1:-200}; RATE=${2:-100}; SECS=${3:-10}
WORKER=${WORKER:-$ROOT/target/release/chat-worker}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); WORKER_PORT=$(free_port)
TMP=$(mktemp -d /tmp/chat-profile-redis.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; rm -rf "$TMP"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync everysec --dir "$TMP" --logfile "$TMP/redis.log" >"$TMP/vg.out" 2>&1 & VG=$!
PIDS+=($VG)
for _ in $(seq 120); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.5; done
"$WORKER" --port "$WORKER_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" --id 1 \
  --messages-per-second 100000 --drain-timeout 1 >"$TMP/worker.out" 2>"$TMP/worker.err" & W=$!
PIDS+=($W)
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$WORKER_PORT/health" >/dev/null && break; sleep 0.5; done
"$ROOT/target/release/chat-bench" --url "http://127.0.0.1:$WORKER_PORT" --connections "$CONNS" \
  --rate "$RATE" --duration "$SECS" ${BENCH_ARGS:-} >"$HERE/profile-bench.json" \
  2>"$TMP/bench.err" & BP=$!
PIDS+=($BP)
zeroed=
while kill -0 "$BP" 2>/dev/null; do
  last=$(tail -n1 "$TMP/bench.err" 2>/dev/null || true)
  if [[ -z $zeroed && $last == *"] run "* ]]; then callgrind_control -z "$VG" >/dev/null; zeroed=1; echo "zeroed: $last"; fi
  sleep 0.5
done
wait "$BP" || true
cp "$TMP/bench.err" "$HERE/profile-bench.stderr.txt"
kill "$W"; wait "$W" || true
kill "$VG"; wait "$VG" || true
f=$TMP/callgrind.out
callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$TMP/incl.txt"; head -80 "$TMP/incl.txt" >"$HERE/redis-callgrind-inclusive.txt"
callgrind_annotate --threshold=100 "$f" >"$TMP/self.txt"; head -70 "$TMP/self.txt" >"$HERE/redis-callgrind-self.txt"
cp "$f" /tmp/redis-server.callgrind.out # kept outside the repo for further annotate runs
