#!/usr/bin/env bash
# One command to run the cluster on this machine: installs what is missing, builds release
# binaries, and runs `chatctl up` on its embedded defaults (one worker per core, public port
# 8080, embedded Redis). Extra arguments go to `chatctl up`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
# The first release build takes several minutes on a small machine: say so, and let cargo
# show its progress, instead of minutes of silence. Later runs are quick and stay quiet.
if [ ! -x target/release/chatctl ] || [ ! -x target/release/chat-worker ]; then
  echo "run: first build of the release binaries (chatctl, chat-worker); this takes a few minutes" >&2
  cargo build --release --workspace --bins
else
  echo "run: checking the release build is up to date" >&2
  cargo build --release --workspace --bins --quiet
fi
echo "run: starting the cluster: target/release/chatctl up $*" >&2
exec target/release/chatctl up "$@"
