"""Microbenchmarks of one connection: ``python -m bench.micro`` (``--help``).

On a throwaway PostgreSQL cluster on this host (TCP on 127.0.0.1, trust authentication,
so the connect figure is the fork and the protocol start-up, not a password exchange),
for psycopg2 and psycopg 3:

* ``connect_ms``: connect + close, median of ``--connects`` attempts;
* ``select1_us``: one ``SELECT 1`` round trip on an open connection (execute + fetch),
  median of ``--queries``;
* ``probe_us``: persistent_backend's check before reusing an idle connection and
  before each statement outside a transaction (``liveness.Checks.probe``, as a kept
  connection's record holds it: libpq status, transaction status, a zero-timeout
  ``poll()``; no round trip), median over batches of ``--probes`` calls;
* ``lend_us``: with ``lend: "transaction"`` (persistent_backend/lending.py), what each
  statement adds: its connection goes back to a pool store and is borrowed again
  (``Store.checkin(lend=True)`` + ``Store.acquire(borrow=True)``, the probe included),
  median over batches of ``--probes`` cycles.

Writes ``bench/published/micro.json`` (or ``--out``), which the docs quote
(``python -m bench.published`` renders the table).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.results import run_meta, write_published
from harness.pgcluster import PgCluster
from persistent_backend import liveness
from persistent_backend.environment import ServerShape
from persistent_backend.options import Options
from persistent_backend.record import Record
from persistent_backend.stores import Store

PUBLISHED = Path(__file__).resolve().parent / "published" / "micro.json"
DRIVERS = ("psycopg2", "psycopg")
LABELS = {"psycopg2": "psycopg2", "psycopg": "psycopg 3"}
FIGURES = (
    ("connect_ms", "connect + close (median of {connects})", "ms", 1),
    ("select1_us", "`SELECT 1` round trip (median of {queries})", "us", 0),
    ("probe_us", "zero-round-trip probe before reuse (median)", "us", 1),
    ("lend_us", 'lend + borrow per statement (`lend: "transaction"`, median)', "us", 1),
)


def connect(driver, cluster):
    # Imported here: the site's settings keep one driver out of a process that loaded them
    # (the test run), and rendering the table needs neither.
    """A new connection to the cluster with ``driver`` (psycopg2 or psycopg)."""
    import psycopg
    import psycopg2

    params = {"host": cluster.host, "port": cluster.port, "user": cluster.superuser}
    if driver == "psycopg2":
        conn = psycopg2.connect(dbname="postgres", **params)
        conn.autocommit = True
        return conn
    return psycopg.connect(dbname="postgres", autocommit=True, **params)


def measure(driver, cluster, connects, queries, probes):
    """{figure: value} for one driver."""
    connect_times = []
    for _ in range(connects):
        start = time.perf_counter()
        connect(driver, cluster).close()
        connect_times.append(time.perf_counter() - start)
    conn = connect(driver, cluster)
    try:
        cursor = conn.cursor()
        round_trips = []
        for _ in range(queries):
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            round_trips.append(time.perf_counter() - start)
        batches = []
        checks = liveness.Checks(conn)
        for _ in range(20):
            start = time.perf_counter()
            for _ in range(probes):
                verdict = checks.probe()
            batches.append((time.perf_counter() - start) / probes)
            assert verdict.alive, verdict
        lend_us = measure_lend(driver, conn, probes)
    finally:
        conn.close()
    return {
        "connect_ms": statistics.median(connect_times) * 1e3,
        "select1_us": statistics.median(round_trips) * 1e6,
        "probe_us": statistics.median(batches) * 1e6,
        "lend_us": lend_us,
    }


def measure_lend(driver, conn, cycles):
    """Microseconds per lend + borrow of ``conn`` through a pool store (median of batches)."""
    options = Options(mode="pool", lend="transaction")
    store = Store(
        "micro", None, options, "pool", 1, ServerShape("other"), "bench.micro",
        is_psycopg3=driver == "psycopg",
    )  # fmt: skip
    record = Record(
        conn, store, backend_pid=conn.info.backend_pid, application_name="bench.micro",
        ssl=False, isolation_level=None,
    )  # fmt: skip
    assert store.reserve()
    store.opened(record, in_use=True)
    batches = []
    for _ in range(20):
        start = time.perf_counter()
        for _ in range(cycles):
            store.checkin(record, lend=True)
            record = store.acquire(borrow=True)
        batches.append((time.perf_counter() - start) / cycles)
        assert record is not None
    counters = store.snapshot()
    assert counters["lends"] == counters["borrows"] == 20 * cycles, counters
    assert counters["requests"] == 1 and counters["opened"] == 1, counters
    return statistics.median(batches) * 1e6


def render(data):
    """The docs' table (markdown) from micro.json's dict."""
    runs = data["meta"]["runs"]
    lines = [
        f"Measured on {data['meta']['date']} ({data['meta']['machine']}, load average "
        f"{data['meta']['load_before'][0]:.2f} before; PostgreSQL {data['meta']['postgres']} "
        f"on the same host over TCP, trust authentication) by `{data['meta']['command']}`:",
        "",
        "| | " + " | ".join(LABELS[d] for d in DRIVERS) + " |",
        "|---|" + "---|" * len(DRIVERS),
    ]
    for key, label, unit, digits in FIGURES:
        cells = [f"{data['figures'][d][key]:.{digits}f} {unit}" for d in DRIVERS]
        lines.append(f"| {label.format(**runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser():
    """The argument parser of ``python -m bench.micro``."""
    p = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.split("\n")[0])
    p.add_argument("--connects", type=int, default=200, help="connects timed (default 200)")
    p.add_argument("--queries", type=int, default=2000, help="SELECT 1 timed (default 2000)")
    p.add_argument("--probes", type=int, default=1000, help="probes per batch (default 1000)")
    p.add_argument("--out", type=Path, default=PUBLISHED, help=f"default {PUBLISHED}")
    return p


def main(argv=None):
    """``python -m bench.micro``: measure with each driver, write the JSON, print the table."""
    args = parser().parse_args(argv)
    if min(args.connects, args.queries, args.probes) < 1:
        print("bench.micro: --connects, --queries and --probes must be >= 1", file=sys.stderr)
        return 2
    cluster = PgCluster(tempfile.mkdtemp(prefix="bench-micro-")).init().start()
    try:
        cluster.wait_ready()
        version = cluster.query("SHOW server_version")[0][0].split()[0]
        figures = {
            d: measure(d, cluster, args.connects, args.queries, args.probes) for d in DRIVERS
        }
    finally:
        cluster.destroy()
    machine = describe()
    command = " ".join(["python -m bench.micro", *(argv or sys.argv[1:])])
    data = {
        "meta": {
            **run_meta(machine, command),
            "postgres": version,
            "drivers": {d: machine["versions"][d] for d in DRIVERS},
            "runs": {"connects": args.connects, "queries": args.queries, "probes": args.probes},
        },
        "figures": figures,
    }
    return write_published(args.out, data, render(data))


if __name__ == "__main__":
    sys.exit(main())
