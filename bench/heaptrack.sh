#!/usr/bin/env bash
# Heap profiles of 3,000 idle logged-in WebSocket connections, one fresh process each, the same
# chat-bench client: writes NAME.heaptrack.txt (the peak allocations) into OUT.
#
#   bench/heaptrack.sh OUT NAME=BINARY [NAME=BINARY ...]
#
# A BINARY named chat-worker gets a redis-server of its own (loopback, free port); any other
# (sio-floor, eio-single) is started with port 0. Everything started here is stopped by pid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd); BIN=$ROOT/target/release
OUT=${1:?usage: bench/heaptrack.sh OUT NAME=BINARY ...}; shift
mkdir -p "$OUT"
T=$(mktemp -d); PIDS=(); trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(port); redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --logfile "$T/r.log" & PIDS+=($!)
sleep 0.5
profile() { # name command...
  local name=$1; shift
  heaptrack -o "$T/$name" "$@" >"$T/$name.out" 2>&1 & local hp=$!
  local p=""; for ((i = 0; i < 100; i++)); do
    p=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/$name.out"); [[ -n "$p" ]] && break; sleep 0.2; done
  "$BIN/chat-bench" --url "ws://127.0.0.1:$p" --connections 3000 --idle --duration 8 --user-prefix "$name" --json -q >/dev/null 2>&1
  pkill -INT -P "$hp" || true; wait "$hp" || true
  heaptrack_print -f "$T/$name".*zst --print-peaks 1 --peak-limit 25 --print-allocators 0 \
    --print-leaks 0 --print-temporary 0 \
    > "$OUT/$name.heaptrack.txt" 2>&1 || true
}
for spec in "$@"; do
  name=${spec%%=*}; binary=${spec#*=}
  if [[ $(basename "$binary") == chat-worker ]]; then
    profile "$name" "$binary" --id 0 --port 0 --host 127.0.0.1 --redis "redis://127.0.0.1:$RP"
  else
    profile "$name" "$binary" 0
  fi
done
echo done
