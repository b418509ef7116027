#!/usr/bin/env bash
# Heap profiles of 3,000 idle logged-in connections: sio-floor as released and as built by
# bench/build-lean.sh (engineioxide + bench/engineioxide-lean.patch). Writes NAME.heaptrack.txt here.
# Usage: bash bench/runs/2026-11-29-lean/heaptrack.sh (after bench/build-lean.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../../.." && pwd)
exec "$ROOT/bench/heaptrack.sh" "$HERE" sio-floor="$ROOT/target/release/sio-floor" \
  sio-floor-lean="$ROOT/target/lean/release/sio-floor"
