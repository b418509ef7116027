#!/bin/sh
exec "$(dirname "$0")/../../../../target/release/chat-worker" --ws-read-buffer 512 "$@"
