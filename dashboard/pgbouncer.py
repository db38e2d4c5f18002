"""PgBouncer's side of the multiplexer: ``SHOW POOLS``, ``SHOW STATS`` and ``SHOW CLIENTS``.

Configured by ``PGBOUNCER_URL`` (settings, from the environment or ``var/site.env``): the
admin console, ``postgres://ROLE:PASSWORD@HOST:PORT/pgbouncer``, with ROLE in PgBouncer's
``stats_users`` (read-only SHOW commands). Behind PgBouncer, ``pg_stat_activity`` shows
PostgreSQL's side (PgBouncer's server connections, each named after the client whose
transaction ran there last); this shows the other side: the client connections the web
processes keep, grouped per host and process from their ``application_name``, those
waiting for a server connection, and PgBouncer's own transaction rate and wait times.

Each web process keeps one admin-console connection (opened at its first snapshot, dropped
after any error and opened again at the next one). The console answers the simple query
protocol in autocommit, with no transaction. The connection is asynchronous so that every
step has a deadline (``TIMEOUT``): a PgBouncer that accepts but never answers (stopped,
wedged) cannot hang the dashboard. PgBouncer down, unreachable or silent is reported in
the snapshot (``reachable: false`` and ``error``) and as a warning, never as an exception.
"""

import os
import select
import threading
import time
from urllib.parse import urlsplit

import psycopg2
import psycopg2.extensions
from django.conf import settings

from dashboard import conf
from persistent_backend import deployment

#: Seconds the whole exchange with the admin console may take (connect, then the SHOWs).
TIMEOUT = 2
ADMIN_DATABASE = "pgbouncer"
WAIT_WARN_SECONDS = 1.0

_lock = threading.Lock()
_conn = None
_conn_pid = None
_conn_url = None


def url():
    """PGBOUNCER_URL (its admin console), "" when not configured."""
    return getattr(settings, "PGBOUNCER_URL", "") or ""


def configured():
    """True when PGBOUNCER_URL is set."""
    return bool(url())


def behind_pgbouncer():
    """Does the site's own database connection go through PgBouncer (persistent_backend)?"""
    return deployment.behind_pgbouncer(settings.DATABASES.get("default"))


def address(value):
    """host:port/database of the admin URL, without the credentials."""
    parts = urlsplit(value)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 6432}{parts.path or '/'}"


def _wait(conn, deadline):
    """Drive an asynchronous connection until its current step is done, or time out."""
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise psycopg2.OperationalError(f"no answer from PgBouncer within {TIMEOUT} s")
        poller = select.poll()
        poller.register(
            conn.fileno(),
            select.POLLIN if state == psycopg2.extensions.POLL_READ else select.POLLOUT,
        )
        poller.poll(remaining * 1000)


def _connection(deadline):
    global _conn, _conn_pid, _conn_url
    if _conn is not None and (_conn.closed or _conn_pid != os.getpid()):
        _conn = None  # closed, or inherited through fork(): never touch the parent's socket
    if _conn is not None and _conn_url != url():
        _drop()  # the setting changed
    if _conn is None:
        # Asynchronous: always in autocommit, and every step under our deadline.
        conn = psycopg2.connect(url(), async_=True, keepalives=1, keepalives_idle=30)
        _conn, _conn_pid, _conn_url = conn, os.getpid(), url()
        _wait(conn, deadline)
    return _conn


def _drop():
    global _conn
    conn, _conn = _conn, None
    if conn is not None and _conn_pid == os.getpid():
        try:
            conn.close()
        except psycopg2.Error:
            pass


def _show(cursor, what, deadline):
    cursor.execute(f"SHOW {what}")
    _wait(cursor.connection, deadline)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fetch():
    """(pools, stats, clients, version) from the admin console; raises psycopg2.Error."""
    deadline = time.monotonic() + TIMEOUT
    if not _lock.acquire(timeout=TIMEOUT):
        raise psycopg2.OperationalError("another thread's query to PgBouncer has not returned")
    try:
        cursor = _connection(deadline).cursor()
        try:
            return (
                _show(cursor, "POOLS", deadline),
                _show(cursor, "STATS", deadline),
                _show(cursor, "CLIENTS", deadline),
                _show(cursor, "VERSION", deadline)[0]["version"],
            )
        finally:
            cursor.close()
    except psycopg2.Error:
        _drop()
        raise
    finally:
        _lock.release()


def _number(value):
    return 0 if value in (None, "") else float(value)


def _pool(row):
    return {
        "database": row["database"],
        "user": row["user"],
        "pool_mode": row.get("pool_mode"),
        "clients_active": int(row["cl_active"]),
        "clients_waiting": int(row["cl_waiting"]),
        "servers_active": int(row["sv_active"]),
        "servers_idle": int(row["sv_idle"]),
        "servers_used": int(row["sv_used"]),
        "servers_tested": int(row["sv_tested"]),
        "servers_login": int(row["sv_login"]),
        "max_wait_seconds": _number(row["maxwait"]) + _number(row.get("maxwait_us")) / 1e6,
    }


def _avg_wait(row):
    """Average wait for a server per transaction over the last stats_period, in seconds.

    PgBouncer 1.18's avg_wait_time is microseconds of waiting per second of the period
    (the mean number of clients waiting); newer versions, whose SHOW STATS counts server
    assignments, report it per assignment (one per transaction in transaction pooling).
    """
    wait = _number(row["avg_wait_time"])
    if "total_server_assignment_count" not in row:
        transactions = _number(row["avg_xact_count"])
        wait = wait / transactions if transactions else 0.0
    return wait / 1e6


def _stats(row):
    transactions = _number(row["total_xact_count"])
    return {
        "database": row["database"],
        "transactions_per_s": _number(row["avg_xact_count"]),
        "queries_per_s": _number(row["avg_query_count"]),
        "avg_wait_seconds": _avg_wait(row),
        "avg_transaction_seconds": _number(row["avg_xact_time"]) / 1e6,
        "avg_query_seconds": _number(row["avg_query_time"]) / 1e6,
        "total_transactions": int(transactions),
        "total_queries": int(_number(row["total_query_count"])),
        "total_wait_seconds": _number(row["total_wait_time"]) / 1e6,
        "wait_per_transaction_seconds": (
            _number(row["total_wait_time"]) / 1e6 / transactions if transactions else None
        ),
    }


def site_owner(application_name, prefix):
    """(host, pid) from a client's application_name, also with application_name_add_host's
    " - addr:port" suffix."""
    return deployment.parse_application_name((application_name or "").split(" - ", 1)[0], prefix)


def group_clients(clients, prefix):
    """Site clients per host ({host, processes, clients, active, waiting, by_process}) and
    the number of other clients (admin console excluded)."""
    hosts, others = {}, 0
    for row in clients:
        if row["database"] == ADMIN_DATABASE:
            continue
        owner = site_owner(row.get("application_name"), prefix)
        if owner is None:
            others += 1
            continue
        host, pid = owner
        entry = hosts.setdefault(host, {"host": host, "clients": 0, "active": 0, "waiting": 0})
        entry["clients"] += 1
        state = row["state"]
        entry["waiting" if state.startswith("waiting") else "active"] += 1
        per = entry.setdefault("_pids", {})
        per[pid] = per.get(pid, 0) + 1
    grouped = []
    for host in sorted(hosts):
        entry = hosts[host]
        per = entry.pop("_pids")
        entry["processes"] = len(per)
        entry["by_process"] = [{"pid": pid, "clients": per[pid]} for pid in sorted(per)]
        grouped.append(entry)
    return grouped, others


def _totals(pools, stats):
    return {
        "clients": sum(p["clients_active"] + p["clients_waiting"] for p in pools),
        "clients_active": sum(p["clients_active"] for p in pools),
        "clients_waiting": sum(p["clients_waiting"] for p in pools),
        "servers": sum(
            p["servers_active"]
            + p["servers_idle"]
            + p["servers_used"]
            + p["servers_tested"]
            + p["servers_login"]
            for p in pools
        ),
        "servers_active": sum(p["servers_active"] for p in pools),
        "servers_idle": sum(p["servers_idle"] + p["servers_used"] for p in pools),
        "max_wait_seconds": max((p["max_wait_seconds"] for p in pools), default=0.0),
        "transactions_per_s": sum(s["transactions_per_s"] for s in stats),
        "queries_per_s": sum(s["queries_per_s"] for s in stats),
        "avg_wait_seconds": max((s["avg_wait_seconds"] for s in stats), default=0.0),
    }


def snapshot():
    """The ``pgbouncer`` part of the dashboard's snapshot (None when not configured)."""
    if not configured():
        return None
    started = time.perf_counter()
    out = {
        "address": address(url()),
        "reachable": False,
        "error": None,
        "version": None,
        "site_behind_pgbouncer": behind_pgbouncer(),
        "pools": [],
        "stats": [],
        "totals": None,
        "hosts": [],
        "other_clients": 0,
    }
    try:
        pools, stats, clients, version = fetch()
    except psycopg2.Error as exc:
        out["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    else:
        out["reachable"] = True
        out["version"] = version
        out["pools"] = [_pool(row) for row in pools if row["database"] != ADMIN_DATABASE]
        out["stats"] = [_stats(row) for row in stats if row["database"] != ADMIN_DATABASE]
        out["totals"] = _totals(out["pools"], out["stats"])
        out["hosts"], out["other_clients"] = group_clients(clients, conf.application_prefix())
    out["timing_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return out


def warnings(bouncer):
    """Dashboard warnings about PgBouncer: unreachable, clients waiting for a server."""
    if bouncer is None:
        return []
    if not bouncer["reachable"]:
        return [
            {
                "level": "critical" if bouncer["site_behind_pgbouncer"] else "warning",
                "code": "pgbouncer_unreachable",
                "message": f"PgBouncer at {bouncer['address']} does not answer: {bouncer['error']}",
            }
        ]
    totals = bouncer["totals"]
    if totals["clients_waiting"] and totals["max_wait_seconds"] >= WAIT_WARN_SECONDS:
        return [
            {
                "level": "warning",
                "code": "pgbouncer_waiting",
                "message": (
                    f"{totals['clients_waiting']} client connection(s) wait for a PostgreSQL "
                    f"server connection at PgBouncer (longest {totals['max_wait_seconds']:.1f}"
                    " s): the pool is too small for the load, or PostgreSQL is slow."
                ),
            }
        ]
    return []
