#!/usr/bin/env python3
"""Prints the tables of BENCHMARKS.md "A command connection of our own": run from anywhere.
O: redis-rs's ConnectionManager for commands (the worker of 136d9ba, unchanged up to 9f56168);
W: the command connection of src/command_wire.rs (and `min_id` without `format!`)."""
import json, pathlib, statistics, sys
from collections import defaultdict

here = pathlib.Path(__file__).parent

sys.path.insert(0, str(here.parent))
from runlib import cpu, per_1000, print_rate8000  # noqa: E402  (bench/runs/runlib.py)

def variant(name):
    return "W" if "W" in name.split("-")[0] else "O"

print("Fixed phase, 2,000 msg/s, 1,000 connections, Rust only, O and W alternated (CPU-ms per 1,000 delivered)\n")
print("| run | worker | Redis | HAProxy | all | worker / HAProxy | delivery p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---:|---|---:|")
by = defaultdict(dict)
for d in sorted((here / "fixed").iterdir(), key=lambda d: (int(d.name.split("-")[1]), d.name)):
    j = json.loads((d / "rust-fixed.json").read_text()); n = per_1000(j)
    w, r, h = cpu(j, "worker") / n, cpu(j, "redis") / n, cpu(j, "haproxy") / n
    by[variant(d.name)][d.name.split("-")[1]] = (w, r, h)
    print(f"| {d.name} | {w:.1f} | {r:.1f} | {h:.1f} | {w + r + h:.1f} | {w / h:.3f} | {j['latency_ms']['p50']:.2f} / {j['latency_ms']['p99']:.2f} | {j['messages']['lost']} |")
print()
pairs = sorted(set(by["O"]) & set(by["W"]), key=int)
for i, name in ((0, "worker"), (1, "Redis"), (2, "HAProxy")):
    ch = [by["W"][k][i] / by["O"][k][i] - 1 for k in pairs]
    print(f"- {name}, W against O in the same round: median {statistics.median(ch):+.1%} ({min(ch):+.1%} … {max(ch):+.1%}, {len(ch)} pairs)")
for v in ("O", "W"):
    norm = [w / h for w, _, h in by[v].values()]
    print(f"- {v}: worker median {statistics.median(w for w, _, _ in by[v].values()):.1f}; worker / HAProxy median {statistics.median(norm):.3f}")

print("\n8,000 msg/s for 10 s through HAProxy, Rust only, alternated\n")
print_rate8000(here, variant, lambda n: int(n.split("-")[1]))

print("\nSide by side with Node, fixed phase (CPU-ms per 1,000 delivered); W, W, O three times, then W, O\n")
print("| pass | worker, ours / Node's | ratio | all-process, ours / Node's | ratio | delivery p50 / p99, ours vs Node's (ms) | lost |")
print("|---|---|---:|---|---:|---|---:|")
ratios = defaultdict(lambda: ([], []))
within = defaultdict(list)
for d in sorted((here / "passes").iterdir(), key=lambda d: (d.name.split("-")[1][0], d.name)):
    rj = json.loads((d / "rust-fixed.json").read_text()); nj = json.loads((d / "node-fixed.json").read_text())
    rn, nn = per_1000(rj), per_1000(nj)
    rw, nw = cpu(rj, "worker") / rn, cpu(nj, "worker") / nn
    ra, na = cpu(rj, "worker", "haproxy", "redis") / rn, cpu(nj, "worker", "haproxy", "redis") / nn
    ws, als = ratios[variant(d.name)]; ws.append(nw / rw); als.append(na / ra)
    within[variant(d.name)].append((cpu(rj, "worker") / cpu(rj, "haproxy"), cpu(rj, "worker") / cpu(rj, "redis"), rw))
    print(f"| {d.name} | {rw:.1f} / {nw:.1f} | {nw / rw:.3f}× | {ra:.1f} / {na:.1f} | {na / ra:.2f}× "
          f"| {rj['latency_ms']['p50']:.2f} / {rj['latency_ms']['p99']:.2f} vs {nj['latency_ms']['p50']:.2f} / {nj['latency_ms']['p99']:.2f} "
          f"| {rj['messages']['lost']} / {nj['messages']['lost']} |")
print()
for v, (ws, als) in sorted(ratios.items()):
    print(f"- {v}: worker median {statistics.median(ws):.3f}× ({min(ws):.3f}–{max(ws):.3f}, ≥ 4× in {sum(w >= 4 for w in ws)} of {len(ws)}); "
          f"all-process median {statistics.median(als):.3f}× ({min(als):.2f}–{max(als):.2f}, ≥ 2.2× in {sum(a >= 2.2 for a in als)} of {len(als)})")
for v, xs in sorted(within.items()):
    print(f"- {v}, within its own Rust phase: worker CPU-ms per 1,000 median {statistics.median(x[2] for x in xs):.1f}; "
          f"worker / HAProxy median {statistics.median(x[0] for x in xs):.3f}, worker / Redis median {statistics.median(x[1] for x in xs):.3f}")
paired = [(d, here / "passes" / d.name.replace("sbsW", "sbsO")) for d in (here / "passes").glob("sbsW-*") if d.name[5:].isdigit()]
ratio_ch, cpu_ch = [], []
for w, o in paired:
    def worker_and_ratio(d):
        rj = json.loads((d / "rust-fixed.json").read_text()); nj = json.loads((d / "node-fixed.json").read_text())
        rw = cpu(rj, "worker") / per_1000(rj)
        return rw, cpu(nj, "worker") / per_1000(nj) / rw
    (wc, wr), (oc, orat) = worker_and_ratio(w), worker_and_ratio(o)
    cpu_ch.append(wc / oc - 1); ratio_ch.append(wr / orat - 1)
print(f"- one-to-one pairs (W-r, O-r), {len(paired)}: W's worker CPU per message median {statistics.median(cpu_ch):+.1%} "
      f"(lower in {sum(c < 0 for c in cpu_ch)}); its ratio against Node median {statistics.median(ratio_ch):+.1%} "
      f"(higher in {sum(c > 0 for c in ratio_ch)}, {min(ratio_ch):+.1%} … {max(ratio_ch):+.1%})")
