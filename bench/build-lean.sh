#!/usr/bin/env bash
# Design option 3 of BENCHMARKS.md's "Memory floor", as a real build: chat-worker and sio-floor
# built against engineioxide with bench/engineioxide-lean.patch (its per-socket packet channel
# holds boxed packet buffers, so the 32-slot block tokio allocates up front is ~0.3 KB instead
# of ~5.4 KB). Nothing in the product uses this build; it measures what the upstream change
# would buy.
#
#   bench/build-lean.sh        # prints the folder of the two binaries
#
# The workspace is copied (tracked files only) so the patch never touches this checkout's
# Cargo.lock; the build goes to target/lean, kept between runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "build-lean: $*" >&2; }
VERSION=$(awk '/^name = "engineioxide"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' "$ROOT/Cargo.lock")
[[ -n "$VERSION" ]] || { log "engineioxide not found in Cargo.lock"; exit 1; }
(cd "$ROOT" && cargo fetch -q)
SRC=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "engineioxide-$VERSION" | head -n1)
[[ -n "$SRC" ]] || { log "engineioxide-$VERSION not in the cargo registry"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/engineioxide"
(cd "$WORK/engineioxide" && git apply "$ROOT/bench/engineioxide-lean.patch")
mkdir "$WORK/ws"
(cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$WORK/ws")
log "building engineioxide-$VERSION + engineioxide-lean.patch into target/lean"
(cd "$WORK/ws" && CARGO_TARGET_DIR="$ROOT/target/lean" cargo build --release -q \
  --config "patch.crates-io.engineioxide.path=\"$WORK/engineioxide\"" \
  -p chat --bin chat-worker -p chat-bench --bin sio-floor)
echo "$ROOT/target/lean/release"
