"""The shared ring of samples (last 5 minutes) behind every rate, whoever answers the poll.

Each snapshot adds a sample of cumulative figures to ``history.json`` (at most one per
``MIN_SPACING`` seconds, under the directory lock). A rate is the difference between the
current figures and an older sample over the time between them, so it is right whichever
process answers each poll, and the charts read the same ring.

Request counters are paired with the time their own process published them (not the
time of the sample), so a 2-second publication cycle adds no jitter to the rates.
"""

from dashboard import conf, records, store
from dashboard.histogram import difference

HISTORY = "history.json"
KEEP_SECONDS = 300
MIN_SPACING = 1.5
CPU_WINDOW = 2.0
XACT_WINDOW = 10.0
# Index of each counter in a sample's per-process entry.
PUBLISHED, REQUESTS, ERRORS, OPENED = range(4)


def rate_window():
    """Seconds a rate is taken over: at least two publications, at least 5 s."""
    return max(5.0, 2 * conf.publish_interval())


def make_sample(now, live, totals, cpu, states, activity):
    """Cumulative figures now: per process (with its publication time) and site-wide."""
    return {
        "t": now,
        "procs": {
            store.process_key(r["host"], r["pid"]): [
                r["published_at"],
                r.get("requests") or 0,
                r.get("errors_5xx") or 0,
                store.opened_connections(r),
            ]
            for r in live
        },
        "cpu": cpu,
        "xact": (
            [activity["now"], activity["transactions"]]
            if activity and activity["transactions"] is not None
            else None
        ),
        "buckets": totals["buckets"],
        "states": states,
    }


def load(path):
    """The samples of history.json that follow the schema (records.sample), oldest first."""
    data, uid = store.read_json(path / HISTORY, with_owner=True)
    if not isinstance(data, list) or not records.trusted_owner_uid(uid):
        return []
    good = []
    for entry in data:
        try:
            good.append(records.sample(entry))
        except records.BadRecord:
            continue
    good.sort(key=lambda s: s["t"])
    return good


def process_rates(samples, key, entry):
    """Requests, 5xx and new connections per second of one process, or None."""
    published = entry[PUBLISHED]
    ref = None
    for sample in reversed(samples):
        old = sample["procs"].get(key)
        if old is None or old[PUBLISHED] >= published:
            continue
        ref = old
        if published - old[PUBLISHED] >= rate_window():
            break
    if ref is None:
        return None
    seconds = published - ref[PUBLISHED]

    def rate(index):
        if entry[index] is None or ref[index] is None or entry[index] < ref[index]:
            return None
        return (entry[index] - ref[index]) / seconds

    return {"requests": rate(REQUESTS), "errors_5xx": rate(ERRORS), "new_connections": rate(OPENED)}


def _older(samples, now, window, pick):
    """(time, value) of the newest sample at least ``window`` old, else the oldest one."""
    ref = None
    for sample in reversed(samples):
        value = pick(sample)
        if value is None or value[0] >= now:
            continue
        ref = value
        if now - value[0] >= window:
            break
    return ref


def cpu_percent(samples, key, cpu_seconds, now):
    """CPU % of ``key`` over CPU_WINDOW, None without an older sample (or a restart)."""
    ref = _older(samples, now, CPU_WINDOW, lambda s: _pair(s["t"], s["cpu"].get(key)))
    if ref is None or cpu_seconds < ref[1]:
        return None
    return 100.0 * (cpu_seconds - ref[1]) / (now - ref[0])


def transactions_rate(samples, xact):
    """Transactions per second over XACT_WINDOW, None without an older sample."""
    if xact is None:
        return None
    ref = _older(samples, xact[0], XACT_WINDOW, lambda s: s["xact"])
    if ref is None or xact[1] < ref[1]:
        return None
    return (xact[1] - ref[1]) / (xact[0] - ref[0])


def latency_counts(samples, buckets, now, window):
    """Per-bucket counts of the last ``window`` seconds and the seconds they cover.

    With less history than that, the oldest sample is used; with none (or after a
    reset), the counts since the processes started, and a None window.
    """
    ref = _older(samples, now, window, lambda s: _pair(s["t"], s["buckets"]))
    if ref is not None:
        delta = difference(buckets, ref[1])
        if delta is not None:
            return delta, now - ref[0]
    return list(buckets), None


def _pair(t, value):
    return None if value is None else (t, value)


def _total(rates, name):
    values = [r[name] for r in rates.values() if r is not None and r[name] is not None]
    return sum(values) if values else None


def evaluate(older, current):
    """The chart point (site-wide rates, states) and per-process rates of ``current``."""
    rates = {key: process_rates(older, key, entry) for key, entry in current["procs"].items()}
    point = {
        "t": current["t"],
        "requests_per_s": _total(rates, "requests"),
        "errors_5xx_per_s": _total(rates, "errors_5xx"),
        "new_connections_per_s": _total(rates, "new_connections"),
        "transactions_per_s": transactions_rate(older, current["xact"]),
        "states": current["states"],
    }
    return point, rates


def update(path, current, record=True):
    """Evaluate ``current`` against the ring; append it if due. Call inside store.locked().

    Returns (the samples older than ``current``, its point, its per-process rates).
    """
    samples = load(path)
    older = [s for s in samples if s["t"] < current["t"]]
    point, rates = evaluate(older, current)
    due = not samples or current["t"] - samples[-1]["t"] >= MIN_SPACING
    if record and due and len(older) == len(samples):
        samples.append({**current, "point": point})
        samples = [s for s in samples if s["t"] >= current["t"] - KEEP_SECONDS]
        store.write_json(path / HISTORY, samples)
    return older, point, rates


def chart(samples, since=None):
    """The stored points (newest last) after ``since``, for the charts."""
    return [s["point"] for s in samples if "point" in s and (since is None or s["t"] > since)]
