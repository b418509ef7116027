#!/usr/bin/env bash
# Worker CPU per delivered message and recvfrom calls (STRACE=1) by WebSocket read buffer
# (--ws-read-buffer) and message size (chat-bench --size), one worker direct, 200 connections,
# 1,000 msg/s, 10 s; the buffers alternated within each size. Loopback only; stops by pid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd); BIN=$ROOT/target/release
OUT=${OUT:?set OUT to a scratch folder}; mkdir -p "$OUT"
STRACE=${STRACE:-}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=(); cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --logfile "$OUT/redis.log" & PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
for round in ${ROUNDS:-1 2}; do for size in ${SIZES:-32 1000 8000}; do for buf in ${BUFS:-1024 256 512}; do
  redis-cli -p "$RP" flushall >/dev/null
  WP=$(free_port)
  "$BIN/chat-worker" --port "$WP" --host 127.0.0.1 --redis "redis://127.0.0.1:$RP" --id 1 \
    --messages-per-second 100000 --drain-timeout 1 --ws-read-buffer "$buf" >/dev/null 2>"$OUT/w.err" & W=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$WP/health" >/dev/null && break; sleep 0.1; done
  ST=""
  if [[ -n $STRACE ]]; then strace -c -f -p "$W" -o "$OUT/strace-$buf-$size-$round.txt" & ST=$!; sleep 0.5; fi
  "$BIN/chat-bench" --url "http://127.0.0.1:$WP" --connections 200 --rate "${RATE:-1000}" --duration 10 \
    --size "$size" --watch worker="$W" --json -q >"$OUT/b-$buf-$size-$round.json" 2>/dev/null
  [[ -n $ST ]] && { kill -INT "$ST"; wait "$ST" || true; }
  kill "$W"; wait "$W" 2>/dev/null || true
  python3 - "$OUT/b-$buf-$size-$round.json" "$buf" "$size" "$round" "$OUT/strace-$buf-$size-$round.txt" <<'PY'
import json,os,sys
d=json.load(open(sys.argv[1])); m=d["messages"]; p=d["processes"]["worker"]
if os.path.exists(sys.argv[5]):  # strace -c's table: calls are the 4th column
    calls=[int(l.split()[3]) for l in open(sys.argv[5]) if l.split()[-1:]==["recvfrom"]]
    print(f"size {sys.argv[3]:>5} buf {sys.argv[2]:>5}: recvfrom per delivered message {calls[0]/max(m['received'],1):.2f} (CPU under strace means nothing)")
    sys.exit()
print(f"round {sys.argv[4]} size {sys.argv[3]:>5} buf {sys.argv[2]:>5}: worker {1000*p['cpu_ms']/max(m['received'],1):6.1f} CPU-ms/1000, received {m['received']}, lost {m['lost']}, p99 {d['latency_ms']['p99']}")
PY
done; done; done
