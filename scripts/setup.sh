#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks. Idempotent, silent when all is there.
#   scripts/setup.sh          runtime and test dependencies
#   scripts/setup.sh runtime  only what `chatctl up` needs (redis-server, haproxy)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
if [ "$mode" = all ]; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
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
[ "$mode" = all ] || exit 0

# Node packages for the end-to-end tests (official socket.io-client, playwright-core driving
# Debian's chromium): reinstalled only when the lock file changed.
js=tests/js
stamp="$js/node_modules/.setup-stamp"
want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing node packages in $js (npm ci)" >&2
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
fi
