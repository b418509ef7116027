#!/usr/bin/env bash
# Callgrind profile of one release chat-worker under a modest fixed load (perf has no hardware
# counters in this VM). One worker, its own redis-server, both on free loopback ports, chat-bench
# direct to the worker. Counters are zeroed when chat-bench enters its measured phase, so the profile is the
# measured phase (plus the short drain and the closing of the sockets): no handshakes, no log-ins.
#   OUT=bench/runs/NAME bench/profile.sh [CONNS] [RATE] [SECS]
# writes callgrind-self.txt, callgrind-inclusive.txt and profile-bench.json into OUT.
# WORKER=path profiles another chat-worker build (bench/build-lean.sh's, say).
# BENCH_ARGS="--users 50" adds chat-bench flags (fewer users than connections: every user has
# several sockets, so each message goes to several).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=${OUT:?set OUT to the run folder the profile goes into}
mkdir -p "$HERE"
CONNS=${1:-200}; RATE=${2:-500}; SECS=${3:-10}
WORKER=${WORKER:-$ROOT/target/release/chat-worker}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); WORKER_PORT=$(free_port)
TMP=$(mktemp -d /tmp/chat-profile.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; rm -rf "$TMP"' EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
  --dir "$TMP" --logfile "$TMP/redis.log" & PIDS+=($!)
sleep 0.5
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
  "$WORKER" --port "$WORKER_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" --id 1 \
  --messages-per-second 100000 --drain-timeout 1 >"$TMP/worker.out" 2>"$TMP/worker.err" & VG=$!
PIDS+=($VG)
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$WORKER_PORT/health" >/dev/null && break; sleep 1; done
"$ROOT/target/release/chat-bench" --url "http://127.0.0.1:$WORKER_PORT" --connections "$CONNS" \
  --rate "$RATE" --duration "$SECS" --watch worker="$VG" ${BENCH_ARGS:-} >"$HERE/profile-bench.json" \
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
kill "$VG"; wait "$VG" || true
f=$TMP/callgrind.out # written at exit: the measured phase, the drain and the closing
echo "profile: $f"
callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$TMP/incl.txt"; head -65 "$TMP/incl.txt" >"$HERE/callgrind-inclusive.txt"
callgrind_annotate --threshold=100 "$f" >"$TMP/self.txt"; head -65 "$TMP/self.txt" >"$HERE/callgrind-self.txt"
cp "$f" /tmp/chat-worker.callgrind.out # kept outside the repo for further annotate runs

