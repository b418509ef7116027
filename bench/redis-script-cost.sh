#!/usr/bin/env bash
# What one send costs Redis, and where: the worker's send script (key.lua + deliver.lua +
# send_many.lua, one message) called with redis-benchmark on a fresh redis-server of its own,
# next to a trivial EVAL and a bare PUBLISH; INFO commandstats splits the script's time into
# its inner commands and the rest (the Lua machinery). MAXLEN is set above the number of calls
# so the inbox is never trimmed by count, as in a run where recipients ack what they get.
#
#   bench/redis-script-cost.sh [CALLS]      # default 30000; prints a Markdown table
#
# Loopback only, a free port, persistence off (AOF: APPENDONLY=yes). Stops what it starts by pid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CALLS=${1:-30000}
APPENDONLY=${APPENDONLY:-no}
T=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly "$APPENDONLY" --dir "$T" \
  --logfile "$T/redis.log" & PIDS+=($!)
C=(redis-cli -p "$PORT")
for ((i = 0; i < 50; i++)); do "${C[@]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
S=$ROOT/src/store/scripts
SEND=$("${C[@]}" script load "$(cat "$S/key.lua" "$S/deliver.lua" "$S/send_many.lua")")
"${C[@]}" sadd 'chat:{u:bob}:workers' w1 >/dev/null
bench() { redis-benchmark -p "$PORT" -n "$CALLS" -c 2 -q "$@" >/dev/null 2>&1; }
stats() { "${C[@]}" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p'; }
"${C[@]}" config resetstat >/dev/null
bench eval "return 1" 0
bench publish chat:bench x
TRIVIAL=$(stats)
"${C[@]}" config resetstat >/dev/null
# ARGV as Store::send_many builds them for one message (see send_many.lua's header).
bench evalsha "$SEND" 2 'chat:{u:bob}:inbox' 'chat:{u:bob}:workers' $((CALLS * 2)) 0-1 86400000 \
  'chat:{w:{}}:deliver' 'b' $'\n' alice 'hello there, a message of 32 b..' 1732850000000 \
  'm' $'\n'
SENDS=$(stats)
python3 - "$CALLS" "$TRIVIAL" "$SENDS" <<'PY'
import sys
calls = int(sys.argv[1])
def parse(text):
    return {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in text.splitlines() if l.strip()}
trivial, sends = parse(sys.argv[2]), parse(sys.argv[3])
us = lambda d, k: d[k][1] / d[k][0] if k in d and d[k][0] else 0.0
print("| what | µs per call |\n|---|---:|")
print(f"| `EVAL \"return 1\" 0` | {us(trivial, 'eval'):.2f} |")
print(f"| `PUBLISH` (no subscriber) | {us(trivial, 'publish'):.2f} |")
script = us(sends, 'evalsha')
inner = 0.0
for k in ("xadd", "xtrim", "pexpire", "smembers", "publish"):
    if k in sends:
        per = sends[k][1] / sends['evalsha'][0]
        inner += per
        print(f"| send script: its `{k.upper()}` ({sends[k][0] / sends['evalsha'][0]:.0f} per call) | {per:.2f} |")
print(f"| **send script, whole call** | **{script:.2f}** |")
print(f"| send script: the rest (Lua, arguments, replies) | {script - inner:.2f} |")
PY
