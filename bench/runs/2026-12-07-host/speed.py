#!/usr/bin/env python3
"""Every one-step 8,000 msg/s run of the issue-5/6 sessions, sorted by the CPU the whole machine
(workers, Redis, HAProxy, chat-bench) spent on the same ~80,000 messages, with its latency.
    python3 bench/runs/2026-12-07-host/speed.py      # from the repository root
"""
import glob, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.dirname(HERE)
paths = (glob.glob(f"{RUNS}/2026-12-07-passes/rate8000/w1000-*/rust-sweep-0.json")
         + glob.glob(f"{RUNS}/2026-12-07-passes/rate8000/aof-check/rust-sweep-0.json")
         + glob.glob(f"{RUNS}/2026-12-07-passes/rate8000-pin/pin-*/rust-sweep-0.json")
         + glob.glob(f"{HERE}/*/rust-sweep-0.json"))
rows = []
for p in paths:
    d = json.load(open(p))
    lat, m = d["latency_ms"], d["machine"]
    rows.append((m["watched_and_self_ms"] / 1000, lat["p50"], lat["p99"], d["messages"]["lost"],
                 os.path.relpath(os.path.dirname(p), RUNS)))
print("| core-s for the step | p50 (ms) | p99 (ms) | lost | run |\n|---:|---:|---:|---:|---|")
for cs, p50, p99, lost, run in sorted(rows):
    mark = "**" if p99 < 10 else ""
    print(f"| {cs:.2f} | {p50:.2f} | {mark}{p99:.1f}{mark} | {lost} | `{run}` |")
