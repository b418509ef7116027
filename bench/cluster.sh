#!/usr/bin/env bash
# One Redis vs a 3-primary Redis Cluster, side by side in one run, under the same chatctl
# cluster (same workers, same HAProxy config, same chat-bench client): a fixed load, then a
# rate sweep up to the highest rate delivered with p99 < 10 ms. Reports Redis CPU per
# delivered message for each shard and in all, and which process was the busiest.
#
#   bench/cluster.sh               # about 6 minutes on 2 cores
#   QUICK=1 bench/cluster.sh       # a minute: checks the script itself
#
# Knobs (environment): WORKERS (default: cores), FIXED_RATE 2000 msg/s, FIXED_CONNS 1000,
# FIXED_SECS 15, SWEEP_CONNS 1000, SWEEP_SECS 8, SWEEP_START 2000, SWEEP_FACTOR 1.25,
# SWEEP_MAX 40000, OUT (results folder).
#
# Both sides run without replicas and with min_replicas_acked = 0, so they do the same work
# per message (a replica's WAIT would only add its round trip). Ports are probed free, every
# process started here is stopped by pid on exit, loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
NCPU=$(nproc)
WORKERS=${WORKERS:-$NCPU}
if [[ -n "${QUICK:-}" ]]; then
  FIXED_RATE=${FIXED_RATE:-500}; FIXED_CONNS=${FIXED_CONNS:-200}; FIXED_SECS=${FIXED_SECS:-4}
  SWEEP_CONNS=${SWEEP_CONNS:-200}; SWEEP_SECS=${SWEEP_SECS:-3}; SWEEP_START=${SWEEP_START:-1000}
  SWEEP_MAX=${SWEEP_MAX:-2000}
fi
FIXED_RATE=${FIXED_RATE:-2000}; FIXED_CONNS=${FIXED_CONNS:-1000}; FIXED_SECS=${FIXED_SECS:-15}
SWEEP_CONNS=${SWEEP_CONNS:-1000}; SWEEP_SECS=${SWEEP_SECS:-8}; SWEEP_START=${SWEEP_START:-2000}
SWEEP_FACTOR=${SWEEP_FACTOR:-1.25}; SWEEP_MAX=${SWEEP_MAX:-40000}
OUT=${OUT:-$ROOT/bench/runs/$(date -u +%Y-%m-%d)-cluster}
mkdir -p "$OUT"

log() { echo "[cluster-bench $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# A free loopback TCP port (and, for cluster nodes, its +10000 bus port is set explicitly).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PIDS=(); STATE=""; BENCH_PID=""
cleanup() {
  [[ -z "$BENCH_PID" ]] || kill "$BENCH_PID" 2>/dev/null || true
  [[ -z "$STATE" ]] || "$BIN/chatctl" --state-dir "$STATE" down >/dev/null 2>&1 || true
  local p
  for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${REDIS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

log "building (release)"
(cd "$ROOT" && cargo build --release -q -p chat -p chatctl -p chat-bench)

# Starts one redis-server (extra args after the port); appends its pid to REDIS_PIDS.
start_node() { # dir port [args…]
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" "$@" &
  REDIS_PIDS+=($!)
  local i
  for ((i = 0; i < 50; i++)); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "redis-server on $port did not start (see $dir/redis.log)"
}

# Globals: REDIS_URL, NODE_PORTS (array), NODE_PIDS (array, same order).
start_single() {
  local port; port=$(free_port)
  start_node "$OUT/single" "$port"
  NODE_PORTS=("$port"); NODE_PIDS=("${REDIS_PIDS[-1]}")
  REDIS_URL="redis://127.0.0.1:$port"
}
start_cluster() {
  NODE_PORTS=(); NODE_PIDS=()
  local i port bus hosts=()
  for i in 0 1 2; do
    port=$(free_port); bus=$(free_port)
    start_node "$OUT/cluster-$i" "$port" --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000
    NODE_PORTS+=("$port"); NODE_PIDS+=("${REDIS_PIDS[-1]}"); hosts+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${hosts[@]}" --cluster-yes >"$OUT/cluster-create.log" 2>&1 \
    || die "redis-cli --cluster create failed (see $OUT/cluster-create.log)"
  for ((i = 0; i < 100; i++)); do
    redis-cli -p "${NODE_PORTS[0]}" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  REDIS_URL="redis+cluster://$(IFS=,; echo "${hosts[*]}")"
}
flush_all() { local p; for p in "${NODE_PORTS[@]}"; do redis-cli -p "$p" flushall >/dev/null; done; }

WATCH=()
start_chat() { # side
  STATE=$OUT/state-$1
  local public base
  public=$(free_port); base=$(python3 -c 'import socket
for b in range(31000, 60000, 17):
    ok = True
    for p in range(b, b + 64):
        s = socket.socket()
        try: s.bind(("127.0.0.1", p))
        except OSError: ok = False
        finally: s.close()
        if not ok: break
    if ok: print(b); break')
  PUBLIC_PORT=$public
  printf '[limits]\nmessages_per_second = 100000\nmax_connections_per_worker = 30000\n[redis]\nmin_replicas_acked = 0\n' >"$OUT/chat.toml"
  "$BIN/chatctl" --state-dir "$STATE" up --workers "$WORKERS" --port "$public" \
    --base-port "$base" --bind 127.0.0.1 --redis "$REDIS_URL" --metrics off \
    --config "$OUT/chat.toml" --detach >&2
  "$BIN/chatctl" --state-dir "$STATE" status --json >"$OUT/status-$1.json"
  WATCH=()
  local i=0 p
  for p in $(python3 -c 'import json,sys; [print(w["pid"]) for w in json.load(open(sys.argv[1]))["workers"]]' "$OUT/status-$1.json"); do
    WATCH+=(--watch "worker$i=$p"); i=$((i + 1))
  done
  local master; master=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["haproxy"]["pid"])' "$OUT/status-$1.json")
  i=0
  for p in $master $(cat /proc/"$master"/task/*/children 2>/dev/null); do WATCH+=(--watch "haproxy$i=$p"); i=$((i + 1)); done
  for ((i = 0; i < ${#NODE_PIDS[@]}; i++)); do WATCH+=(--watch "redis$i=${NODE_PIDS[$i]}"); done
}
stop_chat() { "$BIN/chatctl" --state-dir "$STATE" down >&2 || true; STATE=""; }

bench() { # out-json connections rate seconds prefix
  "$BIN/chat-bench" --url "http://127.0.0.1:$PUBLIC_PORT" --connections "$2" --rate "$3" \
    --duration "$4" --user-prefix "$5" "${WATCH[@]}" --json -q >"$1" 2>"${1%.json}.err" &
  BENCH_PID=$!
  wait "$BENCH_PID" || true
  BENCH_PID=""
}

measure() { # side
  local side=$1 rate step=0 ok
  flush_all
  log "$side: fixed $FIXED_RATE msg/s, $FIXED_CONNS connections, ${FIXED_SECS}s"
  bench "$OUT/$side-fixed.json" "$FIXED_CONNS" "$FIXED_RATE" "$FIXED_SECS" "${side}fx-"
  rate=$SWEEP_START
  rm -f "$OUT/$side"-sweep-*.json
  while :; do
    flush_all
    log "$side: sweep $rate msg/s"
    bench "$OUT/$side-sweep-$step.json" "$SWEEP_CONNS" "$rate" "$SWEEP_SECS" "${side}sw$step-"
    ok=$(python3 - "$OUT/$side-sweep-$step.json" "$rate" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("no"); sys.exit()
rate = float(sys.argv[2])
m, t, l = d["messages"], d["throughput"], d["latency_ms"]
good = l["p99"] < 10 and t["delivered_per_s"] >= 0.95 * rate and m["ack_errors"] == 0
print(f"  delivered {t['delivered_per_s']:.0f}/s p99 {l['p99']} ms lost {m['lost']} -> {'ok' if good else 'over'}", file=sys.stderr)
print("yes" if good else "no")
EOF
)
    step=$((step + 1))
    [[ "$ok" == yes ]] || break
    rate=$(python3 -c "print(int($rate * $SWEEP_FACTOR))")
    [[ "$rate" -le "$SWEEP_MAX" ]] || break
  done
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ //') x $NCPU"
  echo "redis: $(redis-server --version)"
  echo "workers: $WORKERS"
} >"$OUT/machine.txt"

start_single; start_chat single; measure single; stop_chat
for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
REDIS_PIDS=()
start_cluster; start_chat cluster; measure cluster; stop_chat

python3 "$ROOT/bench/cluster_report.py" "$OUT" | tee "$OUT/table.md"
log "done: $OUT"
