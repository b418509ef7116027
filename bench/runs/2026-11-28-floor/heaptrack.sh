#!/usr/bin/env bash
# Heap profiles of 3,000 idle logged-in connections: the worker before (OLD) and after this
# change, and the bare socketioxide floor. Writes NAME.heaptrack.txt (peak allocations) here.
# Usage: OLD=/path/to/old/chat-worker bash bench/runs/2026-11-28-floor/heaptrack.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../../.." && pwd); BIN=$ROOT/target/release
exec "$ROOT/bench/heaptrack.sh" "$HERE" sio-floor="$BIN/sio-floor" chat-worker="$BIN/chat-worker" \
  ${OLD:+chat-worker-old="$OLD"}
