#!/usr/bin/env python3
"""Prints the tables of BENCHMARKS.md "Two one-liners for socketioxide": run from anywhere."""
import json, pathlib, re, statistics

here = pathlib.Path(__file__).parent

print("| build | callgrind Ir, measured phase | delivered | Ir per message |")
print("|---|---:|---:|---:|")
for d in sorted(here.glob("callgrind-*")):
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", (d / "callgrind-self.txt").read_text()).group(1).replace(",", ""))
    t = json.loads((d / "profile-bench.json").read_text())["throughput"]
    n = t["delivered_per_s"] * t["run_seconds"]
    print(f"| {d.name[len('callgrind-'):]} | {total:,} | {n:,.0f} | {total / n:,.0f} |")

print()
print("| pass | today's worker | one-liners | one-liners + lean channel |")
print("|---|---:|---:|---:|")
def worker(d):
    if not (d / "rust-fixed.json").exists():
        return None
    j = json.loads((d / "rust-fixed.json").read_text()); p, t = j["processes"], j["throughput"]
    assert j["messages"]["lost"] == 0
    return sum(v["cpu_ms"] for k, v in p.items() if k.startswith("worker")) / (t["delivered_per_s"] * t["run_seconds"] / 1000)
cols = {"base2": [], "sioalloc": [], "upstream": []}
for r in range(1, 8):
    row = []
    for v in cols:
        w = worker(here / f"{v}-{r}")
        if w is not None:
            cols[v].append(w)
        row.append(f"{w:.1f}" if w is not None else "—")
    print(f"| {r} | " + " | ".join(row) + " |")
print("| median | " + " | ".join(f"{statistics.median(c):.1f}" for c in cols.values()) + " |")
print("| mean | " + " | ".join(f"{statistics.mean(c):.1f}" for c in cols.values()) + " |")
