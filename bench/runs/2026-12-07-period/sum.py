#!/usr/bin/env python3
"""Prints the tables of BENCHMARKS.md "The window counted from the wake-up": run from anywhere.
old1000: the 1 ms window slept after every turn (873f04f); perN (and alt1000, the side-by-side
passes alternated with old1000): wake-ups at least N µs apart, the window counted from the last
wake-up (136d9ba)."""
import json, pathlib, statistics, sys
from collections import defaultdict

here = pathlib.Path(__file__).parent

sys.path.insert(0, str(here.parent))
from runlib import cpu, per_1000  # noqa: E402  (bench/runs/runlib.py)

print("Fixed phase, 2,000 msg/s, 1,000 connections, Rust only, alternated (CPU-ms per 1,000 delivered)\n")
print("| run | worker | Redis | HAProxy | all | delivery p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---|---:|")
by = defaultdict(list)
order = lambda d: (d.name.split("-")[0], int(d.name.split("-")[2]), d.name.split("-")[1] != "old1000", d.name)
for d in sorted((here / "fixed").iterdir(), key=order):
    j = json.loads((d / "rust-fixed.json").read_text()); n = per_1000(j)
    w, r, h = cpu(j, "worker") / n, cpu(j, "redis") / n, cpu(j, "haproxy") / n
    by[d.name.rsplit("-", 1)[0]].append(w)
    print(f"| {d.name} | {w:.1f} | {r:.1f} | {h:.1f} | {w + r + h:.1f} | {j['latency_ms']['p50']:.2f} / {j['latency_ms']['p99']:.2f} | {j['messages']['lost']} |")
print()
for k, ws in by.items():
    print(f"- {k}: worker median {statistics.median(ws):.1f}, mean {statistics.mean(ws):.1f}")

print("\n8,000 msg/s for 10 s through HAProxy, Rust only, alternated within each batch\n")
print("| run | delivered/s | core-s, all with chat-bench | workers | HAProxy | Redis | delivery p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---:|---|---:|")
held = defaultdict(lambda: [0, 0])
order8 = lambda d: (d.name.split("-")[0], int(d.name.split("-")[2]), d.name.split("-")[1] != "old1000", d.name)
for d in sorted((here / "rate8000").iterdir(), key=order8):
    j = json.loads((d / "rust-sweep-0.json").read_text())
    s = lambda *k: cpu(j, *k) / 1000
    p99 = j["latency_ms"]["p99"]
    v = d.name.split("-")[1]; held[v][0] += p99 < 10; held[v][1] += 1
    print(f"| {d.name} | {j['throughput']['delivered_per_s']:.0f} | {s('') :.2f} | {s('worker'):.2f} | {s('haproxy'):.2f} | {s('redis'):.2f} "
          f"| {j['latency_ms']['p50']:.1f} / {p99:.1f} | {j['messages']['lost']} |")
print()
for v, (h, n) in sorted(held.items()):
    print(f"- {v}: p99 < 10 ms in {h} of {n}")

print("\nSide by side with Node, fixed phase (CPU-ms per 1,000 delivered); alt1000 and old1000 alternated\n")
print("| pass | worker, ours / Node's | ratio | all-process, ours / Node's | ratio | delivery p50 / p99, ours vs Node's (ms) | lost |")
print("|---|---|---:|---|---:|---|---:|")
ratios = defaultdict(lambda: ([], []))
for d in sorted((here / "passes").iterdir(), key=lambda d: (d.name.split("-")[0], int(d.name.split("-")[1]))):
    rj = json.loads((d / "rust-fixed.json").read_text()); nj = json.loads((d / "node-fixed.json").read_text())
    rn, nn = per_1000(rj), per_1000(nj)
    rw, nw = cpu(rj, "worker") / rn, cpu(nj, "worker") / nn
    ra, na = cpu(rj, "worker", "haproxy", "redis") / rn, cpu(nj, "worker", "haproxy", "redis") / nn
    ws, als = ratios[d.name.split("-")[0]]; ws.append(nw / rw); als.append(na / ra)
    print(f"| {d.name} | {rw:.1f} / {nw:.1f} | {nw / rw:.3f}× | {ra:.1f} / {na:.1f} | {na / ra:.2f}× "
          f"| {rj['latency_ms']['p50']:.2f} / {rj['latency_ms']['p99']:.2f} vs {nj['latency_ms']['p50']:.2f} / {nj['latency_ms']['p99']:.2f} "
          f"| {rj['messages']['lost']} / {nj['messages']['lost']} |")
print()
for v, (ws, als) in ratios.items():
    print(f"- {v}: worker median {statistics.median(ws):.3f}× ({min(ws):.3f}–{max(ws):.3f}, ≥ 4× in {sum(w >= 4 for w in ws)} of {len(ws)}); "
          f"all-process median {statistics.median(als):.3f}× ({min(als):.2f}–{max(als):.2f}, ≥ 2.2× in {sum(a >= 2.2 for a in als)} of {len(als)})")
ws = ratios["per1000"][0] + ratios["alt1000"][0]; als = ratios["per1000"][1] + ratios["alt1000"][1]
print(f"- the new default, all {len(ws)} passes (per1000 and alt1000): worker median {statistics.median(ws):.3f}× "
      f"({min(ws):.3f}–{max(ws):.3f}); all-process median {statistics.median(als):.3f}× ({min(als):.2f}–{max(als):.2f})")
