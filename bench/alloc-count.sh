#!/usr/bin/env bash
# Heap allocations per delivered message in one release chat-worker under message load, by the
# first frame of ours on each call stack (heaptrack counts every malloc call; perf has no call
# graphs in this VM without frame pointers). One worker, its own redis-server, both on free
# loopback ports, chat-bench direct to the worker.
#   OUT=bench/runs/NAME bench/alloc-count.sh [CONNS] [RATE] [SECS]
# writes alloc-per-message.txt and alloc-bench.json into OUT. The count includes the
# handshakes and log-ins (one per connection): keep CONNS small against RATE × SECS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=${OUT:?set OUT to the run folder the counts go into}
mkdir -p "$HERE"
CONNS=${1:-200}; RATE=${2:-1000}; SECS=${3:-10}
WORKER=${WORKER:-$ROOT/target/release/chat-worker}
command -v heaptrack >/dev/null || { echo "heaptrack not found (apt-get install heaptrack)" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); WORKER_PORT=$(free_port)
TMP=$(mktemp -d /tmp/chat-alloc.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; rm -rf "$TMP"' EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --logfile "$TMP/redis.log" >"$TMP/redis.out" 2>&1 & PIDS+=($!)
for _ in $(seq 120); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.5; done
heaptrack -o "$TMP/worker" "$WORKER" --port "$WORKER_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
  --id 1 --messages-per-second 100000 --drain-timeout 1 >"$TMP/worker.out" 2>&1 & H=$!
PIDS+=($H)
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$WORKER_PORT/health" >/dev/null && break; sleep 1; done
"$ROOT/target/release/chat-bench" --url "http://127.0.0.1:$WORKER_PORT" --connections "$CONNS" \
  --rate "$RATE" --duration "$SECS" --user-prefix alloc --json -q >"$HERE/alloc-bench.json"
# heaptrack writes its file when the worker exits: stop the worker (heaptrack's child), then wait.
pkill -INT -P "$H" || true
wait "$H" || true
heaptrack_print -f "$TMP"/worker.*zst --print-allocators 1 --print-peaks 0 --print-leaks 0 \
  --print-temporary 0 --peak-limit 400 --sub-peak-limit 400 >"$TMP/allocators.txt" 2>/dev/null
python3 - "$TMP/allocators.txt" "$HERE/alloc-bench.json" >"$HERE/alloc-per-message.txt" <<'PY'
import collections, json, re, sys
lines = open(sys.argv[1]).read().split("\n")
delivered = json.load(open(sys.argv[2]))["messages"]["received"] or 1
total = next((int(m.group(1)) for l in lines
              if (m := re.match(r"calls to allocation functions: (\d+)", l))), 0)
def short(frame):
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    for a, b in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$u7b$", "{"), ("$u7d$", "}"),
                 ("$RF$", "&"), ("$C$", ","), ("..", "::")]:
        frame = frame.replace(a, b)
    return frame[:110]
ours, inner = collections.Counter(), collections.Counter()
i = 0
while i < len(lines):
    m = re.match(r"^(\d+) calls with .* from:", lines[i])
    if not m:
        i += 1
        continue
    n, frames, i = int(m.group(1)), [], i + 1
    while i < len(lines) and lines[i].startswith("    "):
        if not lines[i].strip().startswith("in "):
            frames.append(short(lines[i].strip()))
        i += 1
    mine = [f for f in frames if "chat::" in f]
    key = mine[0] if mine else "(no frame of ours: the libraries' own tasks)"
    callee = [f for f in frames if not re.search(
        r"raw_vec|alloc::|finish_grow|do_reserve|__rust|malloc|realloc|Box<|Vec<|String|bytes::", f)]
    ours[key] += n
    inner[(key, callee[0] if callee else "?")] += n
print(f"delivered messages: {delivered}; allocation calls: {total} "
      f"({total / delivered:.1f} per message, handshakes and log-ins included)")
print("\nper message, by the first frame of ours:")
for k, v in ours.most_common(30):
    print(f"{v / delivered:7.2f}  {k}")
print("\nper message, by that frame and the first frame below it outside the allocator:")
for (k, c), v in inner.most_common(40):
    print(f"{v / delivered:7.2f}  {k[:70]}  <-  {c}")
PY
cat "$HERE/alloc-per-message.txt" | head -20
