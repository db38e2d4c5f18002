"""pg_stat_activity in one round trip, grouped per web process and per other client.

The site's connections carry ``application_name = "<prefix>:<host>:<pid>"`` (set by
persistent_backend), which names the web process even over a unix socket, where
``client_port`` says nothing. Any role may set any application_name, so a session counts
as the site's only when its role and database are also the site's (this connection's).
The dashboard's own session is left out of every list (it is counted once in the
budget, which is about all sessions).
"""

import json

from django.db import connection

from dashboard import conf
from persistent_backend import deployment

STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
IDLE_IN_TRANSACTION = STATES[2:]
# Wait event types that mean "doing nothing" rather than "stuck".
QUIET_WAITS = {None, "Client", "Activity"}

SQL = f"""
SELECT extract(epoch FROM statement_timestamp())::float8,
       current_database(),
       current_user,
       {deployment.LIMITS_COLUMNS},
       (SELECT xact_commit + xact_rollback FROM pg_stat_database
         WHERE datname = current_database()),
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       (SELECT coalesce(json_agg(row_to_json(a)), '[]'::json) FROM (
          SELECT pid, datname AS database, usename AS "user", application_name,
                 coalesce(host(client_addr), 'local') AS address, state,
                 wait_event_type, wait_event,
                 extract(epoch FROM statement_timestamp() - backend_start)::float8 AS age,
                 extract(epoch FROM statement_timestamp() - xact_start)::float8 AS xact_age,
                 CASE WHEN state = 'active'
                      THEN extract(epoch FROM statement_timestamp() - query_start)::float8
                 END AS query_age,
                 extract(epoch FROM statement_timestamp() - state_change)::float8 AS state_age,
                 CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END AS blocked_by,
                 CASE WHEN %s THEN left(query, %s) END AS query
            FROM pg_stat_activity
           WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
           ORDER BY pid) a)
"""


def fetch(include_queries=False):
    """One query through the site's own connection; returns the parsed activity."""
    with connection.cursor() as cursor:
        cursor.execute(SQL, [bool(include_queries), int(conf.get("DASHBOARD_QUERY_CHARS"))])
        now, database, user, max_conn, su_reserved, reserved, xacts, used, rows = cursor.fetchone()
    if isinstance(rows, str):
        rows = json.loads(rows)
    for row in rows:
        for name in ("age", "xact_age", "query_age", "state_age"):
            if row[name] is not None:
                row[name] = max(0.0, row[name])
        row["blocked_by"] = row["blocked_by"] or []
        if not include_queries:
            row["query"] = None
    budget = deployment.usable_connections(max_conn, su_reserved, reserved)
    return {
        "now": now,
        "database": database,
        "user": user,
        "max_connections": max_conn,
        "reserved_connections": su_reserved + reserved,
        "budget": budget,
        "used": used,
        "used_ratio": used / budget if budget > 0 else None,
        "transactions": xacts,
        "rows": rows,
    }


def site_owner(row, prefix, user, database):
    """(host, pid) of a site connection's web process, or None for another client."""
    if row["user"] != user or row["database"] != database:
        return None
    return deployment.parse_application_name(row["application_name"], prefix)


def state_counts(rows):
    """{state: sessions} for every state of STATES, the rest counted as "other"."""
    counts = dict.fromkeys(STATES, 0)
    counts["other"] = 0
    for row in rows:
        counts[row["state"] if row["state"] in STATES else "other"] += 1
    return counts


def _largest(rows, name):
    values = [row[name] for row in rows if row[name] is not None]
    return max(values) if values else None


def summarize(rows):
    """Counts by state, ages, waits and blocking of a group of connections."""
    waits = {}
    for row in rows:
        if row["wait_event_type"] not in QUIET_WAITS:
            name = f"{row['wait_event_type']}:{row['wait_event']}"
            waits[name] = waits.get(name, 0) + 1
    blockers = sorted({pid for row in rows for pid in row["blocked_by"]})
    return {
        "total": len(rows),
        "states": state_counts(rows),
        "oldest_seconds": _largest(rows, "age"),
        "longest_transaction_seconds": _largest(rows, "xact_age"),
        "longest_query_seconds": _largest(rows, "query_age"),
        "wait_events": waits,
        "blocked": sum(1 for row in rows if row["blocked_by"]),
        "blocked_by": blockers,
    }


def group(activity):
    """Split the rows into site processes {(host, pid): rows} and other clients."""
    site, others = {}, {}
    prefix = conf.application_prefix()
    for row in activity["rows"]:
        owner = site_owner(row, prefix, activity["user"], activity["database"])
        if owner is not None:
            site.setdefault(owner, []).append(row)
        else:
            key = (row["application_name"] or "", row["user"], row["address"], row["database"])
            others.setdefault(key, []).append(row)
    other_clients = [
        {
            "application_name": key[0],
            "user": key[1],
            "address": key[2],
            "database": key[3],
            **summarize(rows),
        }
        for key, rows in sorted(others.items(), key=lambda item: (-len(item[1]), item[0]))
    ]
    return site, other_clients


def connection_rows(rows):
    """The per-connection lines shown under a process (query text only when fetched)."""
    return [
        {
            "backend_pid": row["pid"],
            "state": row["state"],
            "age_seconds": row["age"],
            "transaction_seconds": row["xact_age"],
            "query_seconds": row["query_age"],
            "state_seconds": row["state_age"],
            "wait_event": (
                f"{row['wait_event_type']}:{row['wait_event']}" if row["wait_event_type"] else None
            ),
            "blocked_by": row["blocked_by"],
            "query": row["query"],
        }
        for row in rows
    ]
