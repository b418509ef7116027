#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks for running and testing the cluster.
# Idempotent and silent when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
if [ "${CHAT_SETUP_BROWSER:-1}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  # Packaged services must not start a system Redis/HAProxy on their default ports.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

# Node packages for the end-to-end tests: reinstalled only when the lock file changed.
js=tests/js
stamp="$js/node_modules/.setup-stamp"
want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing node packages in $js (npm ci)" >&2
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
fi
