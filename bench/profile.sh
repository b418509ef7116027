#!/usr/bin/env bash
# Callgrind profile of one release chat-worker under a modest fixed load (perf has no hardware
# counters in this VM). One worker, its own redis-server, both on free loopback ports, chat-bench
# direct to the worker. Counters are zeroed when chat-bench enters its measured phase, so the profile is the
# measured phase (plus the short drain and the closing of the sockets): no handshakes, no log-ins.
#   OUT=bench/runs/NAME bench/profile.sh [CONNS] [RATE] [SECS]
# writes callgrind-self.txt, callgrind-inclusive.txt and profile-bench.json into OUT.
# WORKER=path profiles another chat-worker build (bench/build-lean.sh's, say).
# BENCH_ARGS="--sockets-per-user 4" adds chat-bench flags (here: every user has 4 sockets, so
# each message goes to 4).
# PROFILE=redis profiles redis-server instead (where Redis's instructions per message go); keep
# the rate low (100 msg/s), Redis runs about 50 times slower under callgrind. Its listings are
# redis-callgrind-self.txt and redis-callgrind-inclusive.txt.
# PROFILE=alloc runs the worker under heaptrack instead and writes alloc-per-message.txt: heap
# allocations per delivered message by the first frame of ours on each stack (bench/alloc_report.py);
# heaptrack cannot be zeroed, so handshakes and log-ins count too (keep CONNS small); the
# "worker" that profile-bench.json watches is then heaptrack's script, so its CPU means nothing.
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
PROFILE=${PROFILE:-worker}
[[ $PROFILE == worker || $PROFILE == redis || $PROFILE == alloc ]] ||
  { echo "PROFILE is worker, redis or alloc" >&2; exit 2; }
VALGRIND=(valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out")
REDIS_RUN=(); WORKER_RUN=()
case $PROFILE in
  redis) REDIS_RUN=("${VALGRIND[@]}") ;;
  worker) WORKER_RUN=("${VALGRIND[@]}") ;;
  alloc)
    command -v heaptrack >/dev/null || { echo "heaptrack not found (apt-get install heaptrack)" >&2; exit 2; }
    WORKER_RUN=(heaptrack -o "$TMP/heaptrack") ;;
esac
"${REDIS_RUN[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync everysec --dir "$TMP" --logfile "$TMP/redis.log" >"$TMP/redis.out" 2>&1 & R=$!
PIDS+=($R)
for _ in $(seq 120); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.5; done
"${WORKER_RUN[@]}" "$WORKER" --port "$WORKER_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" --id 1 \
  --messages-per-second 100000 --drain-timeout 1 >"$TMP/worker.out" 2>"$TMP/worker.err" & W=$!
PIDS+=($W)
if [[ $PROFILE == redis ]]; then VG=$R; else VG=$W; fi
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$WORKER_PORT/health" >/dev/null && break; sleep 1; done
"$ROOT/target/release/chat-bench" --url "http://127.0.0.1:$WORKER_PORT" --connections "$CONNS" \
  --rate "$RATE" --duration "$SECS" --watch worker="$W" ${BENCH_ARGS:-} >"$HERE/profile-bench.json" \
  2>"$TMP/bench.err" & BP=$!
PIDS+=($BP)
zeroed=
while kill -0 "$BP" 2>/dev/null; do
  last=$(tail -n1 "$TMP/bench.err" 2>/dev/null || true)
  if [[ -z $zeroed && $PROFILE != alloc && $last == *"] run "* ]]; then
    callgrind_control -z "$VG" >/dev/null; zeroed=1; echo "zeroed: $last"
  fi
  sleep 0.5
done
wait "$BP" || true
cp "$TMP/bench.err" "$HERE/profile-bench.stderr.txt"
if [[ $PROFILE == alloc ]]; then
  # heaptrack (a script) writes its file when the worker, its child, exits.
  pkill -INT -P "$W" || true; wait "$W" || true
  heaptrack_print -f "$TMP"/heaptrack.*zst --print-allocators 1 --print-peaks 0 --print-leaks 0 \
    --print-temporary 0 --peak-limit 400 --sub-peak-limit 400 >"$TMP/allocators.txt" 2>/dev/null
  python3 "$ROOT/bench/alloc_report.py" "$TMP/allocators.txt" "$HERE/profile-bench.json" \
    >"$HERE/alloc-per-message.txt"
  head -20 "$HERE/alloc-per-message.txt"
  exit 0
fi
kill "$W"; wait "$W" || true
kill "$R"; wait "$R" || true
f=$TMP/callgrind.out # written at exit: the measured phase, the drain and the closing
echo "profile: $f"
NAME=callgrind; LINES=65
if [[ $PROFILE == redis ]]; then NAME=redis-callgrind; LINES=80; fi
callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$TMP/incl.txt"; head -"$LINES" "$TMP/incl.txt" >"$HERE/$NAME-inclusive.txt"
callgrind_annotate --threshold=100 "$f" >"$TMP/self.txt"; head -"$LINES" "$TMP/self.txt" >"$HERE/$NAME-self.txt"
cp "$f" "/tmp/chat-$PROFILE.callgrind.out" # kept outside the repo for further annotate runs

