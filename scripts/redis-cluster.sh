#!/usr/bin/env bash
# A 3-primary, 3-replica Redis Cluster on loopback, to try `chatctl up --redis
# redis+cluster://…` on one machine.
#
#   scripts/redis-cluster.sh start DIR [BASE_PORT]   # nodes on BASE_PORT..BASE_PORT+5 (default 7000),
#                                                    # cluster bus on +10000; prints the URL
#   scripts/redis-cluster.sh stop DIR                # stops the nodes by the pids it recorded
#
# Each node keeps its data and nodes.conf under DIR/PORT. `start` on a DIR that already holds
# a running cluster only prints its URL. Loopback only; nothing is persisted (no RDB/AOF).
set -euo pipefail

die() { echo "redis-cluster.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 start DIR [BASE_PORT] | $0 stop DIR"
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
base=${3:-7000}

case "$cmd" in
start)
  command -v redis-server >/dev/null || die "redis-server is not installed (scripts/setup.sh installs it)"
  if [[ -f "$dir/url" ]] && redis-cli -u "redis://$(head -c 200 "$dir/url" | sed 's#redis+cluster://##; s#,.*##')" ping >/dev/null 2>&1; then
    cat "$dir/url"; exit 0
  fi
  hosts=()
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    for p in "$port" $((port + 10000)); do # the node and its cluster bus
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is in use; pass another BASE_PORT"
    done
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --cluster-require-full-coverage no --repl-diskless-sync-delay 0 \
      --save "" --appendonly no --dir "$dir/$port" --logfile "$dir/$port/redis.log" \
      --daemonize yes --pidfile "$dir/$port/redis.pid"
    hosts+=("127.0.0.1:$port")
  done
  for i in 0 1 2 3 4 5; do
    for _ in $(seq 50); do redis-cli -p $((base + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  echo "creating the cluster (3 primaries, 1 replica each)…" >&2
  redis-cli --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || { "$0" stop "$dir"; die "redis-cli --cluster create failed (nodes stopped): see $dir/create.log"; }
  for _ in $(seq 100); do
    redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  url="redis+cluster://$(IFS=,; echo "${hosts[*]:0:3}")"
  echo "$url" >"$dir/url"
  echo "$url"
  echo "try: chatctl up --redis $url    (stop: $0 stop $dir)" >&2
  ;;
stop)
  for pidfile in "$dir"/*/redis.pid; do
    [[ -f "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  rm -f "$dir/url"
  ;;
*) die "unknown command $cmd: start or stop" ;;
esac
