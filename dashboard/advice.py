"""What to change, from the live figures already in the snapshot: one line per rule that
fires, each with the number behind it.

Rules (thresholds below; docs/tuning.md explains them):

* ``busy_daemons``: request threads busy nearly all the time, so requests queue for one:
  more processes if CPU and the connection budget leave room, else CPU is the limit.
* ``pool_waits``: requests waited for a pooled connection: raise ``PERSISTENT_MAX_SIZE``.
* ``idle_connections``: the pools hold many more connections than requests use: lower
  ``PERSISTENT_MAX_SIZE``.
* ``memory``: the daemons' RSS is near the memory budget: fewer threads or processes.
* ``connection_budget``: PostgreSQL's connection budget is nearly used: PgBouncer, or
  fewer processes.

Nothing here queries anything: it reads the snapshot dict, so the JSON, the page and a
test see the same lines.
"""

import math

import psutil

from apache_conf.sizing import MEMORY_SHARE
from dashboard import conf

BUSY_RATIO = 0.85  # average busy threads / threads
CPU_HEADROOM = 0.8  # daemons' CPU below this share of the cores leaves room
WAIT_RATIO = 0.01  # checkout waits per request
MIN_WAITS = 10
IDLE_RATIO = 0.25  # average busy threads / connections held
MIN_IDLE_CONNECTIONS = 4
MEMORY_RATIO = 0.8
MIB = 2**20


def memory_budget_bytes():
    """DASHBOARD_MEMORY_BUDGET_MIB, else apache_conf's share of this machine's memory."""
    mib = conf.get("DASHBOARD_MEMORY_BUDGET_MIB")
    if mib:
        return int(mib) * MIB
    return int(psutil.virtual_memory().total * MEMORY_SHARE)


def _line(rule, message, value):
    return {"rule": rule, "message": message, "value": value}


def _daemons(snap):
    """The site's daemon processes that publish figures (mod_wsgi daemons, alive)."""
    return [p for p in snap["processes"] if p["alive"] and p["threads"] and p["published_at"]]


def _pool(proc):
    return (proc.get("backend") or {}).get("default") or {}


def _per_process_connections(proc):
    pool = _pool(proc)
    return pool.get("max_size") or proc["threads"] or 1


def busy_daemons(snap, cores):
    """Advice when the request threads are mostly busy: what limits (CPU, connections)
    or a process more; None otherwise."""
    procs = [p for p in _daemons(snap) if p["avg_busy_threads"] is not None]
    threads = sum(p["threads"] for p in procs)
    if not threads:
        return None
    busy = sum(p["avg_busy_threads"] for p in procs)
    ratio = busy / threads
    if ratio < BUSY_RATIO:
        return None
    cpu = sum(p["cpu_percent"] or 0 for p in procs)
    db = snap["database"]
    free = db["budget"] - db["used"]
    needed = _per_process_connections(procs[0])
    head = (
        f"Request threads are busy {ratio:.0%} of the time ({busy:.1f} of {threads} on "
        f"average): requests queue for a thread."
    )
    if cpu >= CPU_HEADROOM * cores * 100:
        tail = (
            f" CPU is the limit (the daemons use {cpu:.0f}% of {cores * 100}%): more "
            "processes will not help; make the pages cheaper or add a host."
        )
    elif free < needed:
        tail = (
            f" Another process needs {needed} connection(s) but {free} are free: "
            "PgBouncer first, or more threads per process."
        )
    else:
        tail = (
            f" Add a process ({len(procs)} now, try {len(procs) + 1}): the daemons use "
            f"{cpu:.0f}% of {cores * 100}% CPU and {free} connections are free."
        )
    return _line("busy_daemons", head + tail, round(ratio, 3))


def pool_waits(snap):
    """Advice when requests often waited for a pooled connection (pool mode, or a larger
    max_size); None otherwise."""
    procs = [p for p in _daemons(snap) if _pool(p)]
    waits = sum(_pool(p).get("checkout_waits") or 0 for p in procs)
    requests = sum(p["requests"]["total"] or 0 for p in procs)
    if waits < MIN_WAITS or not requests or waits / requests < WAIT_RATIO:
        return None
    seconds = sum(_pool(p).get("checkout_wait_seconds") or 0 for p in procs)
    pool = _pool(procs[0])
    threads = procs[0]["threads"]
    if pool.get("mode") == "process" and threads > 1:
        fix = f"PERSISTENT_MODE=process holds one connection for {threads} threads: use pool"
    else:
        fix = (
            f"raise PERSISTENT_MAX_SIZE from {pool.get('max_size')} towards the {threads} "
            "threads per process"
        )
    message = (
        f"Requests waited for a pooled connection {waits:,} times ({waits / requests:.1%} of "
        f"{requests:,} requests, {1000 * seconds / waits:.0f} ms on average): {fix}."
    )
    return _line("pool_waits", message, waits)


def idle_connections(snap):
    """Advice when pools hold many connections their threads leave idle (a smaller
    max_size); None otherwise."""
    procs = [
        p
        for p in _daemons(snap)
        if _pool(p).get("mode") == "pool" and p["avg_busy_threads"] is not None
    ]
    held = sum(p["connections"]["total"] for p in procs)
    if held < MIN_IDLE_CONNECTIONS:
        return None
    busy = sum(p["avg_busy_threads"] for p in procs)
    if busy / held >= IDLE_RATIO:
        return None
    max_size = _pool(procs[0]).get("max_size")
    suggested = max(1, math.ceil(2 * busy / len(procs)))
    if max_size is not None and suggested >= max_size:
        return None
    message = (
        f"Connections are mostly idle: the site holds {held} but requests use "
        f"{busy:.1f} on average ({busy / held:.0%}): lower PERSISTENT_MAX_SIZE from "
        f"{max_size} to {suggested}."
    )
    return _line("idle_connections", message, round(busy / held, 3))


def memory(snap):
    """Advice when this host's daemons near the memory budget (memory_budget_bytes())."""
    procs = [p for p in _daemons(snap) if p["local"] and p["rss_bytes"]]
    rss = sum(p["rss_bytes"] for p in procs)
    budget = memory_budget_bytes()
    if not rss or rss < MEMORY_RATIO * budget:
        return None
    message = (
        f"The daemons use {rss / MIB:,.0f} MiB, {rss / budget:.0%} of the "
        f"{budget / MIB:,.0f} MiB memory budget: fewer threads or processes (or recycle "
        "them with maximum-requests)."
    )
    return _line("memory", message, rss)


def connection_budget(snap):
    """Advice when the site's connections near PostgreSQL's usable budget."""
    db = snap["database"]
    ratio = conf.get("DASHBOARD_BUDGET_WARN_RATIO")
    if db["used_ratio"] is None or db["used_ratio"] < ratio:
        return None
    fix = (
        "fewer processes or a smaller pool (PgBouncer is already in front)"
        if snap.get("pgbouncer")
        else "put PgBouncer in front (./deploy.sh --pgbouncer) or run fewer processes"
    )
    message = (
        f"{db['used']} of {db['budget']} PostgreSQL connections in use "
        f"({db['used_ratio']:.0%}), {db['site_connections']} held by the site: {fix}."
    )
    return _line("connection_budget", message, round(db["used_ratio"], 3))


def advise(snap, cores=None):
    """The advice lines for a snapshot (a list, empty when nothing needs changing)."""
    cores = cores or psutil.cpu_count() or 1
    lines = [
        busy_daemons(snap, cores),
        pool_waits(snap),
        idle_connections(snap),
        memory(snap),
        connection_budget(snap),
    ]
    return [line for line in lines if line is not None]
