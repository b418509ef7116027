"""What the run folders' summary scripts share: CPU and message counts of one phase's JSON
(as bench/run.sh writes it)."""


def cpu(j, *prefixes):
    """CPU-ms of the processes whose names start with any of `prefixes` ("" for all)."""
    return sum(v["cpu_ms"] for k, v in j["processes"].items() if k.startswith(prefixes))


def per_1000(j):
    """Thousands of messages delivered in the phase."""
    t = j["throughput"]
    return t["delivered_per_s"] * t["run_seconds"] / 1000
