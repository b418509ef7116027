#!/usr/bin/env bash
# What Redis does per delivered message: one chat-worker per build, its own redis-server (AOF
# everysec, like chatctl's), chat-bench direct to the worker at a fixed rate; Redis's CPU time
# (from /proc) and INFO commandstats over the measured run, divided by the messages stored in
# that same window (its XADD calls: one per direct message).
# Builds alternate (A B A B …) so the machine's drift hits both alike.
#   OUT=bench/runs/NAME bench/redis-ops.sh NAME=BINDIR [NAME=BINDIR …]
# Knobs: RATE (1000 msg/s), CONNS (400), SECS (10), ROUNDS (2), REDIS_PORT 6397, PORT 31097.
# STRACE=1 also counts the worker's system calls over the same window (strace -c attached to
# it; strace slows the worker, so its Redis CPU figures are not comparable with a plain run).
# Redis's user/system split comes from /proc as well.
# writes redis-ops.md (one row per trial) and redis-ops.jsonl into OUT. Stops what it starts.
set -euo pipefail
HERE=${OUT:?set OUT to the run folder}
mkdir -p "$HERE"
RATE=${RATE:-1000}; CONNS=${CONNS:-400}; SECS=${SECS:-10}; ROUNDS=${ROUNDS:-2}
REDIS_PORT=${REDIS_PORT:-6397}; PORT=${PORT:-31097}
TMP=$(mktemp -d /tmp/chat-redis-ops.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
TICK=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$TICK" '{print ($14 + $15) * 1000 / t}' "/proc/$1/stat"; }
# A process's user and system CPU so far, in ms.
worker_io() { awk -v t="$TICK" '{printf "%s %s", $14 * 1000 / t, $15 * 1000 / t}' "/proc/$1/stat"; }

: >"$HERE/redis-ops.jsonl"
for round in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*}; bin=${spec#*=}
    rm -rf "$TMP/redis" && mkdir -p "$TMP/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
      --appendfsync everysec --dir "$TMP/redis" --logfile "$TMP/redis/log" & R=$!; PIDS+=("$R")
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
    "$bin/chat-worker" --port "$PORT" --redis "redis://127.0.0.1:$REDIS_PORT" --id 1 \
      --messages-per-second 100000 --drain-timeout 1 >"$TMP/w.out" 2>"$TMP/w.err" & W=$!; PIDS+=("$W")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
    # Log-ins load the scripts; count from the measured phase on.
    "$bin/chat-bench" --url "http://127.0.0.1:$PORT" --connections "$CONNS" --rate "$RATE" \
      --duration "$SECS" >"$TMP/bench.json" 2>"$TMP/bench.err" & B=$!; PIDS+=("$B")
    c0=""; ST=""
    : >"$TMP/strace.txt"
    while kill -0 "$B" 2>/dev/null; do
      if [[ -z $c0 ]] && grep -q '\] run ' "$TMP/bench.err" 2>/dev/null; then
        if [[ -n ${STRACE:-} ]]; then
          strace -c -f -p "$W" -o "$TMP/strace.txt" 2>/dev/null & ST=$!; PIDS+=("$ST")
        fi
        redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null; c0=$(cpu_ms "$R")
        io0=$(worker_io "$W"); rio0=$(worker_io "$R")
      fi
      sleep 0.2
    done
    wait "$B" || true
    c1=$(cpu_ms "$R"); io1=$(worker_io "$W"); rio1=$(worker_io "$R")
    redis-cli -p "$REDIS_PORT" INFO commandstats >"$TMP/stats.txt"
    if [[ -n $ST ]]; then kill -INT "$ST"; wait "$ST" 2>/dev/null || true; fi
    python3 - "$name" "$round" "$c0" "$c1" "$TMP/stats.txt" "$TMP/bench.json" "$TMP/strace.txt" "$io0" "$io1" "$rio0" "$rio1" >>"$HERE/redis-ops.jsonl" <<'EOF'
import json, sys
name, rnd, c0, c1, stats, bench, strace, io0, io1, rio0, rio1 = sys.argv[1:12]
d = [float(b) - float(a) for a, b in zip(io0.split(), io1.split())]
worker = {"user_ms": d[0], "sys_ms": d[1]}
rd = [float(b) - float(a) for a, b in zip(rio0.split(), rio1.split())]
redis_split = {"user_ms": rd[0], "sys_ms": rd[1]}
syscalls = {}
for line in open(strace):
    f = line.split()
    # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        syscalls[f[-1]] = int(f[3])
calls = {}
for line in open(stats):
    if line.startswith("cmdstat_"):
        cmd, rest = line[8:].split(":", 1)
        f = dict(kv.split("=") for kv in rest.strip().split(","))
        calls[cmd] = (int(f["calls"]), int(f["usec"]))
b = json.load(open(bench))
n = b["messages"]["received"]
print(json.dumps({"build": name, "round": int(rnd), "delivered": n,
                  "lost": b["messages"]["lost"],
                  "redis_cpu_ms": float(c1) - float(c0), "commands": calls,
                  "worker_syscalls": syscalls, "worker": worker, "redis": redis_split}))
EOF
    kill "$W" "$R"; wait "$W" "$R" 2>/dev/null || true
  done
done

python3 - "$HERE/redis-ops.jsonl" >"$HERE/redis-ops.md" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| build | round | messages in the window (XADD) | Redis CPU-ms per 1,000 | commands per message (scripts' inner ones included) | EVALSHA per message | PUBLISH per message | EVALSHA µs per message |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
lost = sum(r["lost"] for r in rows)
wrows = []
for r in rows:
    c = r["commands"]
    n = max(c.get("xadd", (0, 0))[0], 1)
    total = sum(v[0] for k, v in c.items() if k != "config|resetstat")
    ev = c.get("evalsha", (0, 0))
    pub = c.get("publish", (0, 0))
    print(f"| {r['build']} | {r['round']} | {n:,} | {r['redis_cpu_ms'] * 1000 / n:.1f} | "
          f"{total / n:.2f} | {ev[0] / n:.2f} | {pub[0] / n:.2f} | {ev[1] / n:.1f} |")
    w = r["worker"]
    wrows.append(f"| {r['build']} | {r['round']} | "
                 f"{w['user_ms'] * 1000 / n:.1f} | {w['sys_ms'] * 1000 / n:.1f} | "
                 f"{(w['user_ms'] + w['sys_ms']) * 1000 / n:.1f} |")
print(f"\nLost over all trials: {lost}.")
print("\nThe worker over the same window (/proc/PID/stat):\n")
print("| build | round | user CPU-ms per 1,000 | system CPU-ms per 1,000 | total |")
print("|---|---:|---:|---:|---:|")
print("\n".join(wrows))
split = [r for r in rows if r.get("redis")]
if split:
    print("\nRedis over the same window (/proc/PID/stat), and the time spent running scripts "
          "(INFO commandstats' usec of EVALSHA and EVAL, their inner commands included):\n")
    print("| build | round | user CPU-ms per 1,000 | system CPU-ms per 1,000 | in scripts, ms per 1,000 |")
    print("|---|---:|---:|---:|---:|")
    for r in split:
        c = r["commands"]
        n = max(c.get("xadd", (0, 0))[0], 1)
        scripts = c.get("evalsha", (0, 0))[1] + c.get("eval", (0, 0))[1]
        s = r["redis"]
        print(f"| {r['build']} | {r['round']} | {s['user_ms'] * 1000 / n:.1f} | "
              f"{s['sys_ms'] * 1000 / n:.1f} | {scripts / n:.1f} |")
EOF
cat "$HERE/redis-ops.md"
