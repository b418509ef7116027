#!/usr/bin/env python3
"""Per-pass worker and all-process ratios (Node's CPU-ms per 1,000 delivered over ours) of this
run's fixed-phase passes: rf-N measured Rust first, nf-N Node first."""
import json, pathlib, statistics

here = pathlib.Path(__file__).parent

def per_1000(d, impl):
    j = json.loads((d / f"{impl}-fixed.json").read_text())
    p, t = j["processes"], j["throughput"]
    n = t["delivered_per_s"] * t["run_seconds"] / 1000
    worker = sum(v["cpu_ms"] for k, v in p.items() if k.startswith("worker")) / n
    rest = sum(v["cpu_ms"] for k, v in p.items() if k.startswith("haproxy") or k == "redis") / n
    return worker, worker + rest, j["messages"]["lost"]

print("| pass | order | worker, ours / Node's | ratio | all-process, ours / Node's | ratio | lost |")
print("|---|---|---|---:|---|---:|---:|")
ws, alls = [], []
# The order they ran in.
for name in ["rf-1", "rf-2", "rf-3", "nf-1", "rf-4", "nf-2", "rf-5", "nf-3"]:
    d = here / name
    rw, ra, rl = per_1000(d, "rust")
    nw, na, nl = per_1000(d, "node")
    ws.append(nw / rw); alls.append(na / ra)
    order = "Rust first" if d.name.startswith("rf") else "Node first"
    print(f"| {d.name} | {order} | {rw:.1f} / {nw:.1f} | {nw / rw:.2f}× | {ra:.1f} / {na:.1f} | {na / ra:.2f}× | {rl} / {nl} |")
print(f"\nworker median {statistics.median(ws):.3f}×, all-process median {statistics.median(alls):.3f}×")
