#!/usr/bin/env bash
# The whole test suite: set-up, format and lint gates, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The chatctl tests run the workspace's binaries side by side (chat-worker, chat-bench):
# build them all first (cargo builds a package's binary for tests only of that package).
cargo build --workspace --bins
cargo test --workspace --all-targets --no-fail-fast
