"""One snapshot: pg_stat_activity + every process's published figures + psutil + rates.

The JSON endpoint, the page's first paint and /metrics all come from ``build()``.
Its schema is documented in docs/dashboard.md ("JSON snapshot").
"""

import os
import time

from dashboard import activity, advice, conf, history, metrics, pgbouncer, processes, store
from dashboard.histogram import BOUNDS, quantile

SCHEMA_VERSION = 1
LATENCY_WINDOW = 60
FUTURE_SLACK = 60.0  # seconds of clock difference allowed between hosts


def build(include_queries=False, since=None, window=LATENCY_WINDOW, record=True):
    """The whole snapshot as a JSON-ready dict (one query to PostgreSQL)."""
    started = time.perf_counter()
    own = metrics.publisher.current()  # this process's figures, as of now
    db_started = time.perf_counter()
    act = activity.fetch(include_queries)
    database_ms = (time.perf_counter() - db_started) * 1000
    site_rows, other_clients = activity.group(act)
    deployment = processes.deployment(own["backend"])
    merged = _merge(own, site_rows, other_clients, act, window, record)
    keys = _process_keys(merged, site_rows)
    procs = [_process(key, merged, site_rows, deployment) for key in keys]
    snap = {
        "version": SCHEMA_VERSION,
        "generated_at": merged["now"],
        "served_by": {"host": processes.HOST, "pid": os.getpid()},
        "queries_visible": bool(include_queries),
        "deployment": deployment,
        "database": _database(act, site_rows, other_clients, merged, deployment),
        "requests": _requests(merged),
        "processes": procs,
        "other_clients": other_clients,
        "exited": merged["exited"],
        "history": history.chart(merged["samples"], since) + [merged["point"]],
        "metrics": {
            "dir": str(conf.metrics_dir()),
            "publish_interval": conf.publish_interval(),
            "error": merged["error"] or metrics.publisher.error,
            "skipped_records": merged["skipped"],
        },
    }
    # PgBouncer's side (SHOW POOLS / STATS / CLIENTS) when PGBOUNCER_URL is set, else None.
    snap["pgbouncer"] = pgbouncer.snapshot()
    snap["warnings"] = _warnings(snap, act) + pgbouncer.warnings(snap["pgbouncer"])
    snap["advice"] = advice.advise(snap)  # what to change (dashboard/advice.py)
    snap["timings_ms"] = {
        "database": round(database_ms, 3),
        "pgbouncer": snap["pgbouncer"] and snap["pgbouncer"]["timing_ms"],
        "total": round((time.perf_counter() - started) * 1000, 3),
    }
    return snap


def _alive(record, now):
    if record["host"] == processes.HOST:
        return processes.is_running(record["pid"], record.get("started"))
    return now - (record.get("published_at") or 0) < store.stale_after()


def _wanted(record, uid):
    """Why a valid record is refused (None: taken). Another host's only if configured; a
    local one only if its pid, while it runs, belongs to the account that wrote the file."""
    host = record["host"]
    if max(record["published_at"], record["started"]) > time.time() + FUTURE_SLACK:
        return "its times are in the future"  # would never go stale
    if host != processes.HOST:
        if host not in conf.hosts():
            return f"host {host!r} is not in DASHBOARD_HOSTS"
        return None
    if not processes.owned_by(record["pid"], uid):
        return f"pid {record['pid']} runs as another user than the file's owner"
    return None


def _with_own(live, own):
    """The live records, this process's replaced by its in-memory one (fresher than its file)."""
    key = (own["host"], own["pid"])
    others = [r for r in live if (r["host"], r["pid"]) != key]
    filed = next((r for r in live if (r["host"], r["pid"]) == key), {})
    lineage = {k: filed[k] for k in ("restarts", "replaced_pid") if k in filed}
    return [*others, {**own, **lineage}]


def _merge(own, site_rows, other_clients, act, window, record):
    """Everything that needs the shared directory, under its lock (or read-only without)."""
    error = None
    skipped = 0
    siblings = processes.sibling_pids()

    def gather(write):
        now = time.time()
        live, retired, skipped = store.collect(now, _alive, _wanted, write=write)
        live = _with_own(live, own)
        local = _local_processes(live, site_rows, siblings)
        current = _sample(now, live, retired, local, site_rows, other_clients, act)
        samples, point, rates = history.update(conf.metrics_dir(), current, record and write)
        return now, live, retired, skipped, local, samples, point, rates

    try:
        try:
            with store.locked():
                gathered = gather(write=True)
        except store.LockBusy as exc:
            # Someone holds the lock: the same figures, read without writing anything.
            error = str(exc)
            gathered = gather(write=False)
        now, live, retired, skipped, local, samples, point, rates = gathered
    except OSError as exc:
        # No shared directory: still show PostgreSQL and this host's processes.
        error = str(exc)
        now = time.time()
        live, retired = [own], store.new_retired(now)
        local = _local_processes(live, site_rows, siblings)
        current = _sample(now, live, retired, local, site_rows, other_clients, act)
        samples = []
        point, rates = history.evaluate(samples, current)
    totals = store.totals(live, retired)
    counts, covered = history.latency_counts(samples, totals["buckets"], now, window)
    processes.forget_missing(local)
    return {
        "now": now,
        "live": {(r["host"], r["pid"]): r for r in live},
        "retired": retired,
        "totals": totals,
        "has_backend_stats": any(store.opened_connections(r) is not None for r in live),
        "local": local,
        "siblings": siblings,
        "samples": samples,
        "point": point,
        "rates": rates,
        "latency": (counts, covered),
        "exited": [
            {
                **{k: e[k] for k in ("host", "pid", "started", "last_published", "requests")},
                "seconds_ago": store.age(e["last_published"], now),
            }
            for e in reversed(retired["exited"])
        ],
        "error": error,
        "skipped": skipped,
    }


def _local_processes(live, site_rows, siblings):
    """psutil figures of this site's processes on this host: {pid: info or None}.

    Only this process's siblings and the pids of valid records (whose owner runs them):
    a pid named by a session's application_name alone is never inspected, since any
    role can set that name.
    """
    pids = set(siblings)
    pids.update(r["pid"] for r in live if r["host"] == processes.HOST)
    return {pid: processes.inspect(pid) for pid in sorted(pids)}


def _sample(now, live, retired, local, site_rows, other_clients, act):
    cpu = {
        store.process_key(processes.HOST, pid): info["cpu_seconds"]
        for pid, info in local.items()
        if info is not None
    }
    states = activity.state_counts([row for rows in site_rows.values() for row in rows])
    states["other clients"] = sum(client["total"] for client in other_clients)
    totals = store.totals(live, retired)
    return history.make_sample(now, live, totals, cpu, states, act)


def _process_keys(merged, site_rows):
    keys = set(merged["live"]) | set(site_rows)
    keys.update((processes.HOST, pid) for pid, info in merged["local"].items() if info)
    return sorted(keys, key=lambda k: (k[0] != processes.HOST, k[0], k[1]))


def _ratio(numerator, denominator):
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _process(key, merged, site_rows, deployment):
    host, pid = key
    local = host == processes.HOST
    record = merged["live"].get(key) or {}
    info = merged["local"].get(pid) if local else None
    if local and pid not in merged["local"]:
        # Named by a session only: whether it runs, nothing more (not known as ours).
        alive = None if processes.exists(pid) else False
    else:
        alive = (info is not None) if local else (True if record else None)
    rates = merged["rates"].get(store.process_key(host, pid)) or {}
    rows = site_rows.get(key, [])
    threads = record.get("threads")
    if threads is None and local and pid in merged["siblings"]:
        threads = deployment["threads"]
    opened = store.opened_connections(record) if record else None
    started = (info or {}).get("started") or record.get("started")
    cpu = None
    if info is not None:
        cpu = history.cpu_percent(
            merged["samples"], store.process_key(host, pid), info["cpu_seconds"], merged["now"]
        )
    busy = record.get("avg_busy_threads")
    return {
        "key": store.process_key(host, pid),
        "host": host,
        "pid": pid,
        "local": local,
        "alive": alive,
        "answering": local and pid == os.getpid(),
        "started": started,
        "uptime_seconds": store.age(started, merged["now"]),
        "restarts": record.get("restarts"),
        "replaced_pid": record.get("replaced_pid"),
        "rss_bytes": (info or {}).get("rss"),
        "cpu_percent": cpu,
        "cpu_seconds": (info or {}).get("cpu_seconds"),
        "os_threads": (info or {}).get("os_threads"),
        "threads": threads,
        "busy_threads": record.get("busy_threads"),
        "avg_busy_threads": busy,
        "saturation": _ratio(busy if busy is not None else record.get("busy_threads"), threads),
        "published_at": record.get("published_at"),
        "requests": {
            "total": record.get("requests"),
            "errors_5xx": record.get("errors_5xx"),
            "per_s": rates.get("requests"),
            "errors_5xx_per_s": rates.get("errors_5xx"),
        },
        "new_connections": {"total": opened, "per_s": rates.get("new_connections")},
        "requests_per_new_connection": _ratio(record.get("requests"), opened),
        "backend": record.get("backend"),
        "connections": {
            **activity.summarize(rows),
            "list": activity.connection_rows(rows),
        },
    }


def _database(act, site_rows, other_clients, merged, deployment):
    site = sum(len(rows) for rows in site_rows.values())
    capacity = None
    if deployment["processes"] and deployment["threads"]:
        capacity = deployment["processes"] * deployment["threads"]
    return {
        "name": act["database"],
        "max_connections": act["max_connections"],
        "reserved_connections": act["reserved_connections"],
        "budget": act["budget"],
        "used": act["used"],
        "used_ratio": act["used_ratio"],
        "site_connections": site,
        "other_connections": sum(client["total"] for client in other_clients),
        "dashboard_sessions": act["used"] - site - sum(c["total"] for c in other_clients),
        "site_capacity": capacity,
        "states": merged["point"]["states"],
        "transactions_total": act["transactions"],
        "transactions_per_s": merged["point"]["transactions_per_s"],
    }


def _requests(merged):
    totals, point = merged["totals"], merged["point"]
    counts, covered = merged["latency"]
    known = merged["has_backend_stats"] or merged["retired"]["opened"]
    opened = totals["opened"] if known else None
    return {
        "since": merged["retired"]["since"],
        "total": totals["requests"],
        "errors_5xx": totals["errors_5xx"],
        "per_s": point["requests_per_s"],
        "errors_5xx_per_s": point["errors_5xx_per_s"],
        "new_connections_total": opened,
        "new_connections_per_s": point["new_connections_per_s"],
        "requests_per_new_connection": _ratio(totals["requests"], opened),
        "requests_per_new_connection_now": _ratio(
            point["requests_per_s"], point["new_connections_per_s"]
        ),
        "duration_seconds_sum": totals["duration_sum"],
        "duration_buckets": totals["buckets"],
        "latency": {
            "window_seconds": covered,
            "count": sum(counts),
            "p50": quantile(0.50, counts),
            "p95": quantile(0.95, counts),
            "p99": quantile(0.99, counts),
            "bucket_bounds": list(BOUNDS),
            "buckets": counts,
        },
    }


def _warnings(snap, act):
    out = []
    limit = conf.get("DASHBOARD_IDLE_IN_TRANSACTION_WARN_SECONDS")
    for row in act["rows"]:
        if row["state"] in activity.IDLE_IN_TRANSACTION and (row["state_age"] or 0) >= limit:
            out.append(
                _warning(
                    "warning",
                    "idle_in_transaction",
                    f"Connection {row['pid']} ({row['application_name'] or row['user']}) has been "
                    f"{row['state']} for {row['state_age']:.0f} s.",
                )
            )
    db = snap["database"]
    ratio = conf.get("DASHBOARD_BUDGET_WARN_RATIO")
    if db["used_ratio"] is not None and db["used_ratio"] > ratio:
        out.append(
            _warning(
                "critical" if db["used_ratio"] >= 0.95 else "warning",
                "budget",
                f"{db['used']} of {db['budget']} connections in use "
                f"({db['used_ratio']:.0%}, over {ratio:.0%} of the budget).",
            )
        )
    if db["site_capacity"] and db["site_capacity"] > db["budget"]:
        out.append(
            _warning(
                "info",
                "capacity",
                f"The site may open up to {db['site_capacity']} connections "
                f"(processes x threads), more than the budget of {db['budget']}.",
            )
        )
    # Behind PgBouncer a backend carries the application_name of the last client it served:
    # how many name a process says nothing about what that process holds.
    by_name = not pgbouncer.behind_pgbouncer()
    for proc in snap["processes"]:
        held = proc["connections"]["total"]
        if by_name and proc["threads"] and held > proc["threads"]:
            out.append(
                _warning(
                    "warning",
                    "connections_over_threads",
                    f"Process {proc['key']} holds {held} connections for "
                    f"{proc['threads']} request thread(s).",
                )
            )
        if by_name and proc["local"] and proc["alive"] is False and held:
            out.append(
                _warning(
                    "warning",
                    "orphaned_connections",
                    f"{held} connection(s) name process {proc['key']}, which is not running.",
                )
            )
        if proc["connections"]["blocked"]:
            out.append(
                _warning(
                    "warning",
                    "blocked",
                    f"Process {proc['key']}: {proc['connections']['blocked']} connection(s) "
                    f"waiting on locks held by {proc['connections']['blocked_by']}.",
                )
            )
    skipped = snap["metrics"]["skipped_records"]
    if skipped:
        out.append(
            _warning(
                "warning",
                "skipped_records",
                f"{skipped} file(s) in the metrics directory were skipped: not valid records "
                "of this site (see the log of the process that answered).",
            )
        )
    if snap["metrics"]["error"]:
        out.append(
            _warning(
                "warning",
                "metrics_unavailable",
                f"Request figures are unavailable: {snap['metrics']['error']}",
            )
        )
    return out


def _warning(level, code, message):
    return {"level": level, "code": code, "message": message}
