#!/usr/bin/env bash
# One command to run the cluster on this machine: installs what is missing, builds release
# binaries, and runs `chatctl up` on its embedded defaults (one worker per core, public port
# 8080, embedded Redis). Extra arguments go to `chatctl up`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
cargo build --release --workspace --quiet
exec target/release/chatctl up "$@"
