#!/usr/bin/env python3
"""Turns the JSON files bench/run.sh wrote into the side-by-side table (Markdown on stdout)."""
import glob
import json
import os
import sys

out = sys.argv[1]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:
        return None


def fixed_cpu(impl):
    d = load(f"{out}/{impl}-fixed.json")
    if not d:
        return None
    t = d["throughput"]
    delivered = t["delivered_per_s"] * t["run_seconds"]
    if delivered <= 0:
        return None
    procs = d["processes"]
    cpu = lambda pred: sum(v["cpu_ms"] or 0 for k, v in procs.items() if pred(k))
    workers = cpu(lambda k: k.startswith("worker"))
    redis = cpu(lambda k: k == "redis")
    haproxy = cpu(lambda k: k.startswith("haproxy"))
    client = cpu(lambda k: k == "chat-bench")
    per = lambda x: 1000.0 * x / delivered
    return {
        "workers": per(workers), "all": per(workers + redis + haproxy), "redis": per(redis),
        "haproxy": per(haproxy), "client": per(client), "delivered": delivered,
        "rate": d["config"]["rate"], "conns": d["config"]["connections"],
        "delivered_per_s": t["delivered_per_s"], "p50": d["latency_ms"]["p50"],
        "p99": d["latency_ms"]["p99"], "p999": d["latency_ms"]["p999"], "max": d["latency_ms"]["max"],
        "lost": d["messages"]["lost"], "acked": d["messages"]["acked_ok"],
        "received": d["messages"]["received"],
        "other_cores": (d.get("machine") or {}).get("other_cores"),
    }


def sweep(impl):
    best = None
    steps = []
    for path in sorted(glob.glob(f"{out}/{impl}-sweep-*.json"), key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0])):
        d = load(path)
        if not d:
            continue
        t, l, m = d["throughput"], d["latency_ms"], d["messages"]
        good = l["p99"] < 50 and t["delivered_per_s"] >= 0.95 * d["config"]["rate"] and m["ack_errors"] == 0
        oc = (d.get("machine") or {}).get("other_cores")
        steps.append((d["config"]["rate"], t["delivered_per_s"], l["p99"], good, m["lost"], oc))
        if good and (best is None or t["delivered_per_s"] > best[1]):
            best = (d["config"]["rate"], t["delivered_per_s"], l["p99"])
    return best, steps


def idle(impl, name):
    return load(f"{out}/{impl}-{name}.json")


def connect_rate(impl, name):
    rates = []
    for path in glob.glob(f"{out}/{impl}-{name}-[0-9].json"):
        d = load(path)
        if d:
            rates.append(d["connect"]["rate_per_s"])
    return sum(rates) if rates else None


def fmt(x, nd=1):
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}"


def ratio(rust, node, higher_is_better):
    if rust in (None, 0) or node in (None, 0):
        return "—"
    r = rust / node if higher_is_better else node / rust
    return f"{r:.2f}×"


rows = []
fr, fn = fixed_cpu("rust"), fixed_cpu("node")
g = lambda d, k: d[k] if d else None
rate_label = f"{int(fr['rate']) if fr else (int(fn['rate']) if fn else '?')} msg/s offered, {fr['conns'] if fr else (fn['conns'] if fn else '?')} conns"
rows.append((f"Worker CPU-ms per 1,000 delivered ({rate_label})", g(fr, "workers"), g(fn, "workers"), False, 1))
rows.append(("All-process CPU-ms per 1,000 delivered (workers + Redis + HAProxy)", g(fr, "all"), g(fn, "all"), False, 1))
rows.append(("  of which Redis", g(fr, "redis"), g(fn, "redis"), False, 1))
rows.append(("  of which HAProxy", g(fr, "haproxy"), g(fn, "haproxy"), False, 1))
rows.append(("  client (chat-bench) CPU-ms per 1,000, for reference", g(fr, "client"), g(fn, "client"), None, 1))
rows.append(("Fixed load: delivery latency p50 (ms)", g(fr, "p50"), g(fn, "p50"), False, 2))
rows.append(("Fixed load: delivery latency p99 (ms)", g(fr, "p99"), g(fn, "p99"), False, 2))
rows.append(("Fixed load: delivery latency p99.9 / max (ms)",
             f"{fmt(g(fr, 'p999'), 1)} / {fmt(g(fr, 'max'), 1)}" if fr else None,
             f"{fmt(g(fn, 'p999'), 1)} / {fmt(g(fn, 'max'), 1)}" if fn else None, None, 1))
rows.append(("Fixed load: CPU taken by other processes meanwhile (cores)", g(fr, "other_cores"), g(fn, "other_cores"), None, 2))
rows.append(("Fixed load: acked / received (lost)",
             f"{g(fr,'acked'):,} / {g(fr,'received'):,} ({g(fr,'lost')})" if fr else None,
             f"{g(fn,'acked'):,} / {g(fn,'received'):,} ({g(fn,'lost')})" if fn else None, None, 0))
for name, label in (("idle-small", "RSS per idle logged-in connection, {n:,} via HAProxy (KB, workers)"),
                    ("idle-large", "RSS per idle logged-in connection, {n:,} direct to workers (KB, workers)")):
    ir, inn = idle("rust", name), idle("node", name)
    n = (ir or inn or {}).get("logged_in", 0)
    rows.append((label.format(n=n), ir and ir["worker_kb_per_conn"], inn and inn["worker_kb_per_conn"], False, 1))
sr, sr_steps = sweep("rust")
sn, sn_steps = sweep("node")
rows.append(("Highest delivered rate with p99 < 50 ms (msg/s, via HAProxy)", sr and sr[1], sn and sn[1], True, 0))
for name, label in (("idle-proxy", "Connections held through HAProxy (tried {n:,})"),
                    ("idle-max", "Most concurrent connections held, direct to workers (tried {n:,})")):
    ir, inn = idle("rust", name), idle("node", name)
    tried = 0
    for impl in ("rust", "node"):
        for path in glob.glob(f"{out}/{impl}-{name}-[0-9].json"):
            d = load(path)
            if d:
                tried += d["config"]["connections"] if impl == "rust" else 0
    rows.append((label.format(n=tried), ir and ir["held"], inn and inn["held"], True, 0))
rows.append(("Connect + log-in rate at the large idle level (conn/s)", connect_rate("rust", "idle-large"),
             connect_rate("node", "idle-large"), True, 0))

print("| figure | Rust (chatctl) | Node (socket.io + redis-adapter) | Rust advantage (>1 = Rust better) |")
print("|---|---:|---:|---:|")
for label, r, n, hib, nd in rows:
    rs = r if isinstance(r, str) else fmt(r, nd)
    ns = n if isinstance(n, str) else fmt(n, nd)
    adv = "" if hib is None or isinstance(r, str) else ratio(r, n, hib)
    print(f"| {label} | {rs} | {ns} | {adv} |")
print()
for impl, steps in (("rust", sr_steps), ("node", sn_steps)):
    s = ", ".join(f"{int(o)}→{d:,.0f}/s p99 {p:.1f} ms{f' lost {lo}' if lo else ''}{f' (others {oc} cores)' if oc else ''}{'' if ok else ' ✗'}" for o, d, p, ok, lo, oc in steps)
    print(f"- sweep {impl} (offered→delivered msg/s, ✗ = p99 ≥ 50 ms or < 95 % delivered): {s or '—'}")
mt = os.path.join(out, "machine.txt")
if os.path.exists(mt):
    print()
    print("```")
    print(open(mt).read().rstrip())
    print("```")
