#!/usr/bin/env bash
# chat-worker with another global allocator instead of glibc's malloc, to measure beside the
# released build (BENCHMARKS.md, "Allocator"). Nothing in the product uses these builds.
#
#   bench/build-allocator.sh jemalloc|mimalloc    # prints the path of the chat-worker built
#
# The workspace is copied (tracked files only), the allocator crate added to the copy with
# `cargo add` and set as the worker's #[global_allocator]; this checkout is never touched. The
# build goes to target/alloc-NAME, kept between runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "build-allocator: $*" >&2; }
case ${1:-} in
  # The versions BENCHMARKS.md measured.
  jemalloc) CRATE=tikv-jemallocator VERSION=0.6.1 TYPE=tikv_jemallocator::Jemalloc ;;
  mimalloc) CRATE=mimalloc VERSION=0.1.52 TYPE=mimalloc::MiMalloc ;;
  *) log "usage: bench/build-allocator.sh jemalloc|mimalloc"; exit 2 ;;
esac
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$WORK")
cd "$WORK"
cargo add -q -p chat "$CRATE@=$VERSION"
printf '\n#[global_allocator]\nstatic ALLOCATOR: %s = %s;\n' "$TYPE" "$TYPE" >>src/bin/chat-worker.rs
log "building chat-worker with $CRATE $VERSION into target/alloc-$1"
CARGO_TARGET_DIR="$ROOT/target/alloc-$1" cargo build --release -q -p chat --bin chat-worker
echo "$ROOT/target/alloc-$1/release/chat-worker"
