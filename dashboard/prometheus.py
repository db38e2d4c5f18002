"""/metrics: the snapshot's figures in the Prometheus text format.

Site-wide counters (requests, 5xx, latency histogram, new connections) include the
processes that have exited, so ``rate()`` over them is right across restarts; per-process
series carry ``host`` and ``pid`` labels and end with their process.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from dashboard.histogram import BOUNDS, cumulative

CONTENT_TYPE = CONTENT_TYPE_LATEST
PROC = ["host", "pid"]
POOL = ["host", "pid", "alias"]
POOL_COUNTERS = {
    "opened": "New PostgreSQL connections opened by the pool.",
    "reuses": "Checkouts that reused an open connection.",
    "requests": "Requests the backend saw.",
    "leaked_transactions": "Transactions left open at the end of a request and rolled back.",
    "checkout_waits": "Checkouts that had to wait for a free connection.",
    "checkout_wait_seconds": "Seconds spent waiting for a free connection.",
    "checkout_timeouts": "Checkouts that gave up waiting.",
}
POOL_GAUGES = {
    "in_use": "Connections checked out now.",
    "idle": "Open connections not checked out.",
    "size": "Open connections.",
    "max_size": "Most connections the pool may open.",
}
STATE_LABELS = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
    "other": "other",
}


def _counter(name, doc, value):
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name, doc, value):
    return GaugeMetricFamily(name, doc, value=value)


def site_families(snap):
    """Site-wide requests, 5xx, latency histogram and database figures."""
    req, db = snap["requests"], snap["database"]
    yield _counter("site_http_requests", "Requests served (all processes).", req["total"])
    yield _counter("site_http_responses_5xx", "Responses with a 5xx status.", req["errors_5xx"])
    buckets = [str(b) for b in BOUNDS] + ["+Inf"]
    yield HistogramMetricFamily(
        "site_http_request_duration_seconds",
        "Time from the first middleware to the response, merged across processes.",
        buckets=list(zip(buckets, cumulative(req["duration_buckets"]), strict=True)),
        sum_value=req["duration_seconds_sum"],
    )
    if req["new_connections_total"] is not None:
        yield _counter(
            "site_db_connections_opened",
            "New PostgreSQL connections opened by the site (all processes).",
            req["new_connections_total"],
        )
    yield _gauge("site_db_max_connections", "max_connections.", db["max_connections"])
    yield _gauge(
        "site_db_connection_budget",
        "max_connections minus the reserved superuser connections.",
        db["budget"],
    )
    yield _gauge("site_db_connections_used", "Client connections open now.", db["used"])
    if db["transactions_total"] is not None:
        yield _counter(
            "site_db_transactions",
            "Commits and rollbacks in the site's database (pg_stat_database).",
            db["transactions_total"],
        )
    other = GaugeMetricFamily(
        "site_db_other_connections",
        "Connections of other clients.",
        labels=["application", "user", "address", "database"],
    )
    for client in snap["other_clients"]:
        labels = [client["application_name"], client["user"] or "", client["address"] or ""]
        other.add_metric([*labels, client["database"] or ""], client["total"])
    yield other


def process_families(snap):
    """Per web process: connections by state, memory, threads, start time, restarts, CPU,
    requests."""
    conns = GaugeMetricFamily(
        "site_db_connections", "Site connections by web process and state.", labels=[*PROC, "state"]
    )
    gauges = {
        "rss_bytes": GaugeMetricFamily(
            "site_process_resident_memory_bytes", "Resident memory.", labels=PROC
        ),
        "threads": GaugeMetricFamily(
            "site_process_request_threads", "Request threads.", labels=PROC
        ),
        "busy_threads": GaugeMetricFamily(
            "site_process_busy_threads", "Request threads busy now.", labels=PROC
        ),
        "started": GaugeMetricFamily(
            "site_process_start_time_seconds", "Start time (epoch).", labels=PROC
        ),
        "restarts": GaugeMetricFamily(
            "site_process_restarts", "Restarts before this process (same slot).", labels=PROC
        ),
    }
    cpu = CounterMetricFamily("site_process_cpu_seconds", "CPU seconds.", labels=PROC)
    requests = CounterMetricFamily("site_process_requests", "Requests served.", labels=PROC)
    for proc in snap["processes"]:
        labels = [proc["host"], str(proc["pid"])]
        for state, count in proc["connections"]["states"].items():
            conns.add_metric([*labels, STATE_LABELS[state]], count)
        for key, family in gauges.items():
            if proc[key] is not None:
                family.add_metric(labels, proc[key])
        if proc["cpu_seconds"] is not None:
            cpu.add_metric(labels, proc["cpu_seconds"])
        if proc["requests"]["total"] is not None:
            requests.add_metric(labels, proc["requests"]["total"])
    yield conns
    yield from gauges.values()
    yield cpu
    yield requests


def pool_families(snap):
    """persistent_backend's counters and gauges per process and alias."""
    counters = {
        name: CounterMetricFamily(f"site_pool_{name}", doc, labels=POOL)
        for name, doc in POOL_COUNTERS.items()
    }
    gauges = {
        name: GaugeMetricFamily(f"site_pool_{name}", doc, labels=POOL)
        for name, doc in POOL_GAUGES.items()
    }
    by_reason = {
        name: CounterMetricFamily(f"site_pool_{name}", doc, labels=[*POOL, "reason"])
        for name, doc in (
            ("reconnects", "Connections replaced after a failure, by reason."),
            ("recycles", "Connections closed on purpose, by reason (age, uses, idle)."),
        )
    }
    for proc in snap["processes"]:
        for alias, stats in (proc["backend"] or {}).items():
            labels = [proc["host"], str(proc["pid"]), alias]
            for name, family in [*counters.items(), *gauges.items()]:
                if isinstance(stats.get(name), int | float):
                    family.add_metric(labels, stats[name])
            for name, family in by_reason.items():
                for reason, count in (stats.get(name) or {}).items():
                    family.add_metric([*labels, reason], count)
    yield from counters.values()
    yield from gauges.values()
    yield from by_reason.values()


def pgbouncer_families(snap):
    """PgBouncer's side (PGBOUNCER_URL): reachability, clients, servers, rates."""
    bouncer = snap.get("pgbouncer")
    if bouncer is None:
        return
    yield _gauge(
        "site_pgbouncer_up", "1 if PgBouncer's admin console answered.", bouncer["reachable"]
    )
    totals = bouncer["totals"]
    if totals is None:
        return
    clients = GaugeMetricFamily(
        "site_pgbouncer_clients", "Client connections by state.", labels=["state"]
    )
    clients.add_metric(["active"], totals["clients_active"])
    clients.add_metric(["waiting"], totals["clients_waiting"])
    yield clients
    servers = GaugeMetricFamily(
        "site_pgbouncer_servers", "PostgreSQL server connections by state.", labels=["state"]
    )
    servers.add_metric(["active"], totals["servers_active"])
    servers.add_metric(["idle"], totals["servers_idle"])
    yield servers
    per_host = GaugeMetricFamily(
        "site_pgbouncer_host_clients", "Client connections per web host.", labels=["host"]
    )
    for host in bouncer["hosts"]:
        per_host.add_metric([host["host"]], host["clients"])
    yield per_host
    yield _gauge(
        "site_pgbouncer_transactions_per_second",
        "PgBouncer's average transactions per second (last stats_period).",
        totals["transactions_per_s"],
    )
    yield _gauge(
        "site_pgbouncer_wait_seconds_average",
        "PgBouncer's avg_wait_time: clients' wait for a server (last stats_period).",
        totals["avg_wait_seconds"],
    )
    yield _gauge(
        "site_pgbouncer_max_wait_seconds",
        "How long the oldest waiting client has waited.",
        totals["max_wait_seconds"],
    )


class SnapshotCollector:
    """A prometheus_client collector over one snapshot (no global registry)."""

    def __init__(self, snap):
        self.snap = snap

    def collect(self):
        yield from site_families(self.snap)
        yield from process_families(self.snap)
        yield from pool_families(self.snap)
        yield from pgbouncer_families(self.snap)


def render(snap):
    """The snapshot in Prometheus' text exposition format (bytes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)
