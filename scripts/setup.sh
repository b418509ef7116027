#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks. Idempotent, silent when all is there.
#   scripts/setup.sh          runtime and test dependencies
#   scripts/setup.sh runtime  only what `chatctl up` needs (redis-server, haproxy) and the
#                             page's Socket.IO client (npm ci in web/, embedded at build time)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
# npm: the page's Socket.IO client comes from web/node_modules at build time (build.rs).
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ "$mode" = all ]; then
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # TLS test certificates
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)   # the real-browser test
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)   # `promtool check metrics`
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

# `npm ci` in $1, only when its lock file changed since the last run.
npm_ci() {
  local dir=$1 stamp="$1/node_modules/.setup-stamp" want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing node packages in $dir (npm ci)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$stamp"
  fi
}

# The official socket.io-client for the chat page: build.rs embeds it into chat-worker
# (rebuild after this installs it; without it the page says to run this script).
npm_ci web
[ "$mode" = all ] || exit 0

# Node packages for the end-to-end tests (official socket.io-client, playwright-core driving
# Debian's chromium).
npm_ci tests/js
