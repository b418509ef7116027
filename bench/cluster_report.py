#!/usr/bin/env python3
"""Table for bench/cluster.sh: one Redis vs a 3-primary cluster, CPU per delivered message
(µs) per process group and per Redis shard, and the highest swept rate with p99 < 10 ms."""
import glob
import json
import re
import sys

out = sys.argv[1]


def load(path):
    try:
        return json.load(open(path))
    except Exception:
        return None


def per_msg(d):
    """µs of CPU per delivered message for each watched process, and the delivered count."""
    delivered = d["messages"]["received"] or 1
    procs = {k: v["cpu_ms"] * 1000.0 / delivered for k, v in d["processes"].items()}
    return procs, delivered


def group(procs, prefix):
    return sum(v for k, v in procs.items() if re.fullmatch(prefix + r"\d*", k))


def best_rate(side):
    best = None
    steps = sorted(glob.glob(f"{out}/{side}-sweep-*.json"), key=lambda p: int(p.rsplit("-", 1)[1][:-5]))
    for p in steps:
        d = load(p)
        if not d:
            break
        t, l, m = d["throughput"], d["latency_ms"], d["messages"]
        rate = d["config"]["rate"]
        if l["p99"] < 10 and t["delivered_per_s"] >= 0.95 * rate and m["ack_errors"] == 0:
            best = (rate, t["delivered_per_s"], l["p99"], d)
        else:
            return best, (rate, t["delivered_per_s"], l["p99"], d)
    return best, None


rows = []
print("| | one Redis | 3-primary cluster |")
print("|---|---|---|")
fixed = {s: load(f"{out}/{s}-fixed.json") for s in ("single", "cluster")}
stats = {}
for s, d in fixed.items():
    if d:
        stats[s] = per_msg(d)
def cell(s, f):
    return f(*stats[s]) if s in stats else "-"
print("| fixed load: delivered / lost | " + " | ".join(
    cell(s, lambda p, n, s=s: f"{n} / {fixed[s]['messages']['lost']}") for s in ("single", "cluster")) + " |")
print("| fixed load: p50 / p99 latency (ms) | " + " | ".join(
    f"{fixed[s]['latency_ms']['p50']} / {fixed[s]['latency_ms']['p99']}" if fixed[s] else "-" for s in ("single", "cluster")) + " |")
print("| workers µs CPU / delivered msg | " + " | ".join(cell(s, lambda p, n: f"{group(p, 'worker'):.1f}") for s in ("single", "cluster")) + " |")
print("| HAProxy µs CPU / delivered msg | " + " | ".join(cell(s, lambda p, n: f"{group(p, 'haproxy'):.1f}") for s in ("single", "cluster")) + " |")
print("| Redis µs CPU / delivered msg, in all | " + " | ".join(cell(s, lambda p, n: f"{group(p, 'redis'):.1f}") for s in ("single", "cluster")) + " |")
print("| Redis µs CPU / delivered msg, per shard | " + " | ".join(
    cell(s, lambda p, n: ", ".join(f"{p[k]:.1f}" for k in sorted(p) if k.startswith("redis"))) for s in ("single", "cluster")) + " |")
print("| all processes µs CPU / delivered msg | " + " | ".join(
    cell(s, lambda p, n: f"{sum(v for k, v in p.items() if k != 'chat-bench'):.1f}") for s in ("single", "cluster")) + " |")
bests = {s: best_rate(s) for s in ("single", "cluster")}
print("| highest swept rate with p99 < 10 ms (delivered/s) | " + " | ".join(
    (f"{b[1]:.0f} (p99 {b[2]} ms)" if b else "none") for b, _ in bests.values()) + " |")
print("| first rate over (delivered/s, p99) | " + " | ".join(
    (f"{o[0]:.0f} asked: {o[1]:.0f}/s, p99 {o[2]} ms" if o else "-") for _, o in bests.values()) + " |")


def busiest(d):
    secs = d["throughput"]["run_seconds"] or 1
    cores = {k: v["cpu_ms"] / 1000.0 / secs for k, v in d["processes"].items()}
    top = sorted(cores.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v:.2f} cores" for k, v in top) + f"; machine busy {d['machine']['machine_busy_ms'] / 1000.0 / secs:.2f} of the cores"


print("| busiest at the first rate over | " + " | ".join(
    (busiest(o[3]) if o else "-") for _, o in bests.values()) + " |")
