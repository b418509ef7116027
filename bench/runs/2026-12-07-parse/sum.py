#!/usr/bin/env python3
"""Prints the tables of BENCHMARKS.md "Thirteen passes on a quick host": run from anywhere.
H: the worker of d974a14 (the command connection; the product code up to d03b1be); N: of
ad36e40 (deliveries and RESP numbers read by byte scans), reverted by d03b1be."""
import json, pathlib, re, statistics, sys
from collections import defaultdict

here = pathlib.Path(__file__).parent

sys.path.insert(0, str(here.parent))
from runlib import cpu, per_1000, print_rate8000  # noqa: E402  (bench/runs/runlib.py)

FUNCTIONS = ("Delivery::parse", "subscription::parse", "subscription::number", "flight::stream_id")


def functions(profile):
    """Inclusive instructions of the listed functions, and the program's total."""
    found = {}
    for line in (profile / "functions.txt").read_text().splitlines():
        ir = int(re.match(r"\s*([\d,]+)", line).group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            found["total"] = ir
        for f in FUNCTIONS:
            if line.rstrip().endswith(f):
                found[f] = ir
    return found


print("Callgrind, one worker, 200 connections, 500 msg/s for 10 s (bench/profile.sh): instructions per delivered message\n")
print("| profile | messages | whole worker | " + " | ".join(FUNCTIONS) + " |")
print("|---|---:|---:|" + "---:|" * len(FUNCTIONS))
per_variant = defaultdict(lambda: defaultdict(list))
for p in sorted((here / "profiles").iterdir()):
    n = json.loads((p / "profile-bench.json").read_text())["messages"]["received"]
    f = functions(p)
    for k, v in f.items():
        per_variant[p.name[0]][k].append(v / n)
    print(f"| {p.name} | {n:,} | {f['total'] / n:,.0f} | " + " | ".join(f"{f.get(k, 0) / n:,.0f}" for k in FUNCTIONS) + " |")
print()
for k in ("total",) + FUNCTIONS:
    h, m = statistics.median(per_variant["H"][k]), statistics.median(per_variant["N"][k])
    print(f"- {'whole worker' if k == 'total' else k}: H {h:,.0f} → N {m:,.0f} per message ({m / h - 1:+.1%})")
changed = sum(statistics.median(per_variant["H"][k]) - statistics.median(per_variant["N"][k]) for k in FUNCTIONS[:2] + FUNCTIONS[3:])
print(f"- the changed functions together (Delivery::parse, subscription::parse, stream_id; number is inside subscription::parse): "
      f"{changed:,.0f} fewer per message, {changed / statistics.median(per_variant['H']['total']):.1%} of H's whole worker")

print("\nFixed phase, 2,000 msg/s, 1,000 connections, Rust only, H and N alternated, the order swapped every round (CPU-ms per 1,000 delivered)\n")
print("| round | worker H / N | change | worker / HAProxy, H / N | all H / N | delivery p99 H / N (ms) | lost |")
print("|---|---|---:|---|---|---|---:|")
fixed = defaultdict(dict)
for d in (here / "fixed").iterdir():
    j = json.loads((d / "rust-fixed.json").read_text()); n = per_1000(j)
    v, r = d.name.split("-")
    fixed[int(r)][v] = (cpu(j, "worker") / n, cpu(j, "worker") / cpu(j, "haproxy"), cpu(j, "worker", "haproxy", "redis") / n,
                        j["latency_ms"]["p99"], j["messages"]["lost"])
for r, x in sorted(fixed.items()):
    h, m = x["H"], x["N"]
    print(f"| {r} | {h[0]:.1f} / {m[0]:.1f} | {m[0] / h[0] - 1:+.1%} | {h[1]:.3f} / {m[1]:.3f} | {h[2]:.1f} / {m[2]:.1f} | {h[3]:.2f} / {m[3]:.2f} | {h[4] + m[4]} |")
ch = [x["N"][0] / x["H"][0] - 1 for x in fixed.values()]
print(f"\n- N's worker CPU per message against H's in the same round: median {statistics.median(ch):+.1%} "
      f"({min(ch):+.1%} … {max(ch):+.1%}, lower in {sum(c < 0 for c in ch)} of {len(ch)})")
for v in ("H", "N"):
    print(f"- {v}: worker median {statistics.median(x[v][0] for x in fixed.values()):.1f}; "
          f"worker / HAProxy median {statistics.median(x[v][1] for x in fixed.values()):.3f}")

print("\n8,000 msg/s for 10 s through HAProxy, Rust only, N and H alternated\n")
print_rate8000(here, lambda n: n[2], lambda n: n.split("-")[1])

print("\nSide by side with Node, fixed phase, 2,000 msg/s, 1,000 connections (CPU-ms per 1,000 delivered)\n")
print("| pass | worker, ours / Node's | ratio | all-process, ours / Node's | ratio | Redis, HAProxy (ours) | delivery p50 / p99, ours vs Node's (ms) | lost |")
print("|---|---|---:|---|---:|---|---|---:|")
ratios = defaultdict(lambda: ([], []))
by_round = defaultdict(dict)
for d in sorted((here / "passes").iterdir(), key=lambda d: int(d.name.split("-")[1])):
    rj = json.loads((d / "rust-fixed.json").read_text()); nj = json.loads((d / "node-fixed.json").read_text())
    rn, nn = per_1000(rj), per_1000(nj)
    rw, nw = cpu(rj, "worker") / rn, cpu(nj, "worker") / nn
    ra, na = cpu(rj, "worker", "haproxy", "redis") / rn, cpu(nj, "worker", "haproxy", "redis") / nn
    v, r = d.name.split("-")
    ws, als = ratios[v]; ws.append(nw / rw); als.append(na / ra)
    by_round[r][v] = (rw, nw / rw)
    print(f"| {d.name} | {rw:.1f} / {nw:.1f} | {nw / rw:.3f}× | {ra:.1f} / {na:.1f} | {na / ra:.2f}× "
          f"| {cpu(rj, 'redis') / rn:.1f}, {cpu(rj, 'haproxy') / rn:.1f} "
          f"| {rj['latency_ms']['p50']:.2f} / {rj['latency_ms']['p99']:.2f} vs {nj['latency_ms']['p50']:.2f} / {nj['latency_ms']['p99']:.2f} "
          f"| {rj['messages']['lost']} / {nj['messages']['lost']} |")
print()
for v, (ws, als) in sorted(ratios.items()):
    print(f"- {v}, {len(ws)} passes: worker median {statistics.median(ws):.3f}× ({min(ws):.3f}–{max(ws):.3f}, ≥ 4× in {sum(w >= 4 for w in ws)}); "
          f"all-process median {statistics.median(als):.3f}× ({min(als):.2f}–{max(als):.2f}, ≥ 2.2× in {sum(a >= 2.2 for a in als)})")
alternated = [r["H"][1] for r in by_round.values() if len(r) == 2]
if alternated:
    print(f"- H in the alternated rounds only, {len(alternated)}: worker median {statistics.median(alternated):.3f}× "
          f"(≥ 4× in {sum(w >= 4 for w in alternated)})")
pooled = [w for ws, _ in ratios.values() for w in ws]
print(f"- H and N pooled, {len(pooled)} passes: worker median {statistics.median(pooled):.3f}× (≥ 4× in {sum(w >= 4 for w in pooled)})")
pairs = [r for r in by_round.values() if len(r) == 2]
if pairs:
    cpu_ch = [p["N"][0] / p["H"][0] - 1 for p in pairs]
    ratio_ch = [p["N"][1] / p["H"][1] - 1 for p in pairs]
    print(f"- one-to-one rounds (N and H in the same round), {len(pairs)}: N's worker CPU per message median {statistics.median(cpu_ch):+.1%} "
          f"(lower in {sum(c < 0 for c in cpu_ch)}); its ratio against Node median {statistics.median(ratio_ch):+.1%} "
          f"(higher in {sum(c > 0 for c in ratio_ch)}, {min(ratio_ch):+.1%} … {max(ratio_ch):+.1%})")
