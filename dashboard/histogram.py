"""Fixed latency buckets, merged by adding counts (never by averaging averages)."""

import bisect

# Upper bounds in seconds; one more bucket counts everything slower (+Inf).
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def empty_buckets():
    return [0] * (len(BOUNDS) + 1)


def bucket_index(seconds):
    """The first bucket whose upper bound is >= seconds (Prometheus' ``le``)."""
    return bisect.bisect_left(BOUNDS, seconds)


def add_into(total, counts):
    for i, count in enumerate(counts[: len(total)]):
        total[i] += count
    return total


def difference(now, before):
    """Counts between two cumulative readings; None if a counter went backwards (reset)."""
    if before is None or len(before) != len(now):
        return None
    delta = [a - b for a, b in zip(now, before, strict=True)]
    return None if any(d < 0 for d in delta) else delta


def quantile(q, counts):
    """Estimate the q-quantile from per-bucket counts, interpolating inside the bucket.

    Same estimate as Prometheus' histogram_quantile(); a quantile in the +Inf bucket
    reports the largest finite bound. None when there is no observation.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i == len(BOUNDS):
                return BOUNDS[-1]
            lower = BOUNDS[i - 1] if i else 0.0
            return lower + (BOUNDS[i] - lower) * (rank - seen) / count
        seen += count
    return BOUNDS[-1]


def cumulative(counts):
    """Per-bucket counts to Prometheus' cumulative ``le`` counts."""
    out, running = [], 0
    for count in counts:
        running += count
        out.append(running)
    return out
