# Sourced by floor.sh and cpu-floor.sh: starting one loopback server that prints
# `listening on 127.0.0.1:PORT` (chat-worker, sio-floor, sio-chat-floor, eio-single).
# Expects OUT (the results folder), PIDS (an array the caller's trap kills) and die().

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts one server (name, command...), sets SERVER_PID and SERVER_PORT from its first line.
start_server() {
  local name=$1; shift
  # Truncate first: a previous run's line in a reused OUT would otherwise be read as this one's.
  : >"$OUT/$name.out"
  "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    SERVER_PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$OUT/$name.out")
    [[ -n "$SERVER_PORT" ]] && return 0
    sleep 0.1
  done
  die "$name did not start (see $OUT/$name.err)"
}
