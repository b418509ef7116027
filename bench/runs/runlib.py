"""What the run folders' summary scripts share: CPU and message counts of one phase's JSON
(as bench/run.sh writes it)."""


def cpu(j, *prefixes):
    """CPU-ms of the processes whose names start with any of `prefixes` ("" for all)."""
    return sum(v["cpu_ms"] for k, v in j["processes"].items() if k.startswith(prefixes))


def per_1000(j):
    """Thousands of messages delivered in the phase."""
    t = j["throughput"]
    return t["delivered_per_s"] * t["run_seconds"] / 1000


def print_rate8000(folder, variant_of, round_of):
    """The table of a folder's 8,000 msg/s runs (`rate8000/*/rust-sweep-0.json`, one step
    each), in the order `round_of(name)` gives, then how many runs of each variant held
    p99 < 10 ms."""
    import json
    from collections import defaultdict

    print("| run | delivered/s | workers core-s | HAProxy | Redis | delivery p50 / p99 (ms) | lost |")
    print("|---|---:|---:|---:|---:|---|---:|")
    held = defaultdict(lambda: [0, 0])
    for d in sorted((folder / "rate8000").iterdir(), key=lambda d: (round_of(d.name), d.name)):
        j = json.loads((d / "rust-sweep-0.json").read_text())
        core_s = lambda *k: cpu(j, *k) / 1000  # noqa: E731
        p99 = j["latency_ms"]["p99"]
        v = variant_of(d.name)
        held[v][0] += p99 < 10
        held[v][1] += 1
        print(f"| {d.name} | {j['throughput']['delivered_per_s']:.0f} | {core_s('worker'):.2f} | {core_s('haproxy'):.2f} "
              f"| {core_s('redis'):.2f} | {j['latency_ms']['p50']:.1f} / {p99:.1f} | {j['messages']['lost']} |")
    print()
    for v, (h, n) in sorted(held.items()):
        print(f"- {v}: p99 < 10 ms in {h} of {n}")
