#!/bin/bash
# bench-only: the real worker with --coalesce-us forced to 300
args=()
skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then args+=("300"); skip=0; continue; fi
  [ "$a" = "--coalesce-us" ] && skip=1
  args+=("$a")
done
exec "$(dirname "$0")/chat-worker.real" "${args[@]}"
