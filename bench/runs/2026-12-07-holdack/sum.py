#!/usr/bin/env python3
"""Prints the two tables of BENCHMARKS.md "A send's ack held for its receipt": run from this folder."""
import json, pathlib

here = pathlib.Path(__file__).parent

def load(d):
    f = next(d.glob("rust-*.json"))
    return json.loads(f.read_text())

print("| run | worker | HAProxy | Redis | chat-bench | all (w+R+H) | delivery p50 / p99 (ms) | ack p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---:|---|---|---:|")
for d in sorted(here.glob("fx-*")):
    j = load(d); p = j["processes"]; t = j["throughput"]
    n = t["delivered_per_s"] * t["run_seconds"] / 1000
    cpu = lambda *k: sum(p[x]["cpu_ms"] for x in k) / n
    w, h, r, b = cpu("worker0", "worker1"), cpu("haproxy0", "haproxy1"), cpu("redis"), cpu("chat-bench")
    print(f"| {d.name} | {w:.1f} | {h:.1f} | {r:.1f} | {b:.1f} | {w+h+r:.1f} | {j['latency_ms']['p50']:.2f} / {j['latency_ms']['p99']:.2f} "
          f"| {j['ack_latency_ms']['p50']:.2f} / {j['ack_latency_ms']['p99']:.2f} | {j['messages']['lost']} |")
print()
print("| run | delivered/s | core-s, all with chat-bench | HAProxy | workers | delivery p50 / p99 (ms) | ack p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---|---|---:|")
for d in sorted(here.glob("r8k-*")):
    j = load(d); p = j["processes"]
    s = lambda *k: sum(p[x]["cpu_ms"] for x in k) / 1000
    print(f"| {d.name} | {j['throughput']['delivered_per_s']:.0f} | {s(*p):.2f} | {s('haproxy0','haproxy1'):.2f} | {s('worker0','worker1'):.2f} "
          f"| {j['latency_ms']['p50']:.1f} / {j['latency_ms']['p99']:.1f} | {j['ack_latency_ms']['p50']:.1f} / {j['ack_latency_ms']['p99']:.1f} | {j['messages']['lost']} |")
print()
print("| run | window | core-s, all with chat-bench | workers | HAProxy | Redis | delivery p50 / p99 (ms) | lost |")
print("|---|---:|---:|---:|---:|---:|---|---:|")
runs = sorted(here.glob("window8k/w8k-*"), key=lambda d: (d.name.split("-")[2], d.name.split("-")[1]))
for d in runs:
    j = load(d); p = j["processes"]
    s = lambda *k: sum(p[x]["cpu_ms"] for x in k) / 1000
    print(f"| {d.name} | {int(d.name.split('-')[1]) / 1000:g} ms | {s(*p):.2f} | {s('worker0','worker1'):.2f} | {s('haproxy0','haproxy1'):.2f} | {s('redis'):.2f} "
          f"| {j['latency_ms']['p50']:.1f} / {j['latency_ms']['p99']:.1f} | {j['messages']['lost']} |")
