"""Medians and spreads over repeated load runs (wrk's figures as bench.load records them).

Shared by the tuner's summaries (:mod:`apache_conf.tune`) and the bench's
(``bench.summary``): product code cannot import bench, so the one copy lives here.
"""


def spread(values):
    """{"median", "min", "max", "n"} of the values that are not None (None if none)."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    n, middle = len(values), len(values) // 2
    median = values[middle] if n % 2 else (values[middle - 1] + values[middle]) / 2
    return {"median": median, "min": values[0], "max": values[-1], "n": n}


def load_figures(runs):
    """Throughput and latency spreads, and the summed response counts, of finished runs."""
    runs = list(runs)
    return {
        "rps": spread(run["rps"] for run in runs),
        "p50_ms": spread(run["latency_ms"]["p50"] for run in runs),
        "p99_ms": spread(run["latency_ms"]["p99"] for run in runs),
        "ok": sum(run["ok"] for run in runs),
        "non2xx": sum(run["non2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
    }
