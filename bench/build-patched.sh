#!/usr/bin/env bash
# A bench-only build of the cluster's binaries against dependencies with patches applied, to
# measure what an upstream change would buy. Nothing in the product uses such a build.
#
#   bench/build-patched.sh NAME CRATE=PATCH [CRATE=PATCH…]    # prints the binaries' folder
#
# Each CRATE is copied from the cargo registry at the version Cargo.lock pins, PATCH applied
# (paths relative to the crate's root), and used through `patch.crates-io`. The workspace is
# copied (tracked files only) so nothing touches this checkout's Cargo.lock; the build goes to
# target/NAME, kept between runs. Built: chat-worker, chatctl, chat-bench, sio-floor,
# sio-chat-floor (what run.sh's BIN, floor.sh and cpu-floor.sh take).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "build-patched: $*" >&2; }
[[ $# -ge 2 ]] || { log "usage: $0 NAME CRATE=PATCH [CRATE=PATCH…]"; exit 2; }
NAME=$1; shift
(cd "$ROOT" && cargo fetch -q)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PATCHES=()
for spec in "$@"; do
  crate=${spec%%=*}; patch=$(realpath "${spec#*=}")
  version=$(awk -v n="name = \"$crate\"" '$0 == n {getline; gsub(/[^0-9.]/, ""); print; exit}' "$ROOT/Cargo.lock")
  [[ -n "$version" ]] || { log "$crate not found in Cargo.lock"; exit 1; }
  src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "$crate-$version" | head -n1)
  [[ -n "$src" ]] || { log "$crate-$version not in the cargo registry"; exit 1; }
  cp -r "$src" "$WORK/$crate"
  (cd "$WORK/$crate" && git apply "$patch")
  PATCHES+=(--config "patch.crates-io.$crate.path=\"$WORK/$crate\"")
  log "$crate-$version + $(basename "$patch")"
done
mkdir "$WORK/ws"
(cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$WORK/ws")
log "building into target/$NAME"
(cd "$WORK/ws" && CARGO_TARGET_DIR="$ROOT/target/$NAME" cargo build --release -q "${PATCHES[@]}" \
  -p chat -p chatctl -p chat-bench --bin chat-worker --bin chatctl --bin chat-bench --bin sio-floor \
  --bin sio-chat-floor)
echo "$ROOT/target/$NAME/release"
