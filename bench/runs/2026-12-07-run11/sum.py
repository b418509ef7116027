#!/usr/bin/env python3
"""Prints the tables of BENCHMARKS.md "Run 11" that are not in table.md: run from anywhere.
Every run here used the product code (the binaries of d974a14; nothing in src/ has changed
since). rate8000/r-N: 8,000 msg/s for 10 s through HAProxy; fixed/f-N: the Rust-only fixed
phase run right after r-N, a probe of how fast the shared host was then."""
import json, pathlib, sys

here = pathlib.Path(__file__).parent
sys.path.insert(0, str(here.parent))
from runlib import cpu, per_1000, print_rate8000  # noqa: E402  (bench/runs/runlib.py)


def round_of(name):
    return int(name.split("-")[1])


print("8,000 msg/s for 10 s through HAProxy, Rust only\n")
print_rate8000(here, lambda name: "product code", round_of)

print("\nEach 8,000 msg/s run against the host's speed: the machine's busy core-seconds during it (of 20),")
print("and the Rust-only fixed phase right after it (2,000 msg/s, 1,000 connections; CPU-ms per 1,000 delivered)\n")
print("| round | 8,000 msg/s: p99 (ms) | machine busy (core-s) | fixed phase after: workers | all-process | p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---:|---:|")
for d in sorted((here / "rate8000").iterdir(), key=lambda d: round_of(d.name)):
    r = round_of(d.name)
    k = json.loads((d / "rust-sweep-0.json").read_text())
    row = f"| {r} | {k['latency_ms']['p99']:.1f} | {k['machine']['machine_busy_ms'] / 1000:.1f} |"
    f = here / "fixed" / f"f-{r}" / "rust-fixed.json"
    if f.exists():
        j = json.loads(f.read_text())
        n = per_1000(j)
        row += (f" {cpu(j, 'worker') / n:.1f} | {cpu(j, 'worker', 'haproxy', 'redis') / n:.1f} | "
                f"{j['latency_ms']['p99']:.2f} | {j['messages']['lost']} |")
    else:
        row += " — | — | — | — |"
    print(row)
