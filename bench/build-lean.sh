#!/usr/bin/env bash
# Design option 3 of BENCHMARKS.md's "Memory floor", as a real build: the binaries built
# against engineioxide with bench/engineioxide-lean.patch (its per-socket packet channel holds
# boxed packet buffers, so the 32-slot block tokio allocates up front is ~0.3 KB instead of
# ~5.4 KB). Nothing in the product uses this build; it measures what the upstream change
# would buy.
#
#   bench/build-lean.sh        # prints the folder of the binaries (target/lean/release)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec "$ROOT/bench/build-patched.sh" lean "engineioxide=$ROOT/bench/engineioxide-lean.patch"
