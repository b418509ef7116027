#!/usr/bin/env bash
# User vs kernel CPU of one native (not valgrind) chat-worker under the profile load (200 connections,
# 500 msg/s, 10 s, direct), from /proc/PID/stat utime/stime (clock ticks) over the measured phase.
# Run from the repository root: bash bench/runs/2026-11-28-run2/usersys.sh
set -u
T=$(mktemp -d /tmp/us.XXXX)
redis-server --port 6393 --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec --dir $T --logfile $T/r.log & R=$!
sleep 0.5
target/release/chat-worker --port 31091 --redis redis://127.0.0.1:6393 --id 1 --messages-per-second 100000 --drain-timeout 1 >$T/w.out 2>$T/w.err & W=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:31091/health >/dev/null && break; sleep 0.2; done
target/release/chat-bench --url http://127.0.0.1:31091 --connections 200 --rate 500 --duration 10 --json >$T/b.json 2>$T/b.err & B=$!
while ! grep -q "] run " $T/b.err 2>/dev/null; do sleep 0.2; done
a=$(awk '{print $14, $15}' /proc/$W/stat)
while ! grep -q "] drain \|] stop " $T/b.err 2>/dev/null && kill -0 $B 2>/dev/null; do sleep 0.2; done
b=$(awk '{print $14, $15}' /proc/$W/stat)
echo "utime stime ticks at run start: $a ; at end: $b"
wait $B; python3 -c "import json;d=json.load(open('$T/b.json'));print(d['messages']['received'], d['throughput'])"
kill $W; wait $W; kill $R; wait $R; rm -rf $T
