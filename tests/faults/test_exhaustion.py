"""Faults 4 and 5: no connection to be had.

4. Another client holds every connection PostgreSQL allows: the site's requests get a
   clear 503 at once (no hang, no daemon crash) and recover when connections free up.
5. Slow queries hold the pool's connections (pool mode, threads > max_size): the other
   requests wait at most ``checkout_timeout``, then 503; nothing deadlocks.
"""

import threading
import time

import psycopg2
import pytest

from harness.load import Load, counts, request
from harness.waiting import wait_until
from tests.faults import harness
from tests.faults.faultviews.views import SLEEP_TAG

CONNECT_TIMEOUT = 3  # DJANGO_DB_CONNECT_TIMEOUT's default, which the site runs with
CHECKOUT_TIMEOUT = 1.0
SLACK = 10  # a loaded 2-core machine; what is measured goes in the table


class Hog:
    """Another client that takes every connection slot the server has (as a superuser, so
    the reserved ones too). ``control`` is one of its connections, used to look around."""

    def __init__(self, database):
        self.database = database
        self.conns = []
        self.refusals = 0
        self.last_refusal = ""

    def fill(self, quiet_for=0.5, at_most=60.0):
        """Connect until refused, and keep trying until nothing freed for ``quiet_for`` s."""
        start = last_success = time.monotonic()
        while time.monotonic() - last_success < quiet_for or not self.refusals:
            if time.monotonic() - start > at_most:
                raise AssertionError("the server kept accepting connections")
            try:
                self.conns.append(self.database.connect(timeout=2))
                last_success = time.monotonic()
            except psycopg2.OperationalError as exc:
                self.refusals += 1
                self.last_refusal = str(exc).strip()
                time.sleep(0.005)
        return len(self.conns)

    @property
    def control(self):
        return self.conns[0]

    def release(self):
        for conn in self.conns:
            conn.close()
        self.conns = []


def run_exhaustion(server, site_db, pages, figures, *, total, held_for):
    pids = server.daemon_pids()
    hog = Hog(site_db)
    try:
        hog.fill()
        # The site's own kept connections are killed: it needs new ones, which it can't get.
        killed = site_db.terminate(hog.control)
        hog.fill()
        held = site_db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
            conn=hog.control,
        )[0][0]
        assert not site_db.sessions(hog.control), "the site still holds connections"
        rate = 30
        load = Load(server.url, pages, total, concurrency=8, rate=rate, deadline=total / rate + 60)
        load.start()
        origin = load.started_at
        time.sleep(held_for)
        released_at = time.monotonic()
    finally:
        hog.release()
    results = load.wait()
    assert load.sent == total

    before, _, after = harness.split(results, released_at, released_at)
    failed = harness.failures(results)
    value, per_pid = harness.recovery(results, released_at, pids)
    late = [
        r
        for r in harness.failures(after)
        if r.pid in per_pid
        and per_pid[r.pid] is not None
        and r.start > released_at + per_pid[r.pid]
    ]
    figures(
        harness.Row.from_results(
            "4",
            server.variant.label,
            results,
            recovery=value,
            notes=[
                f"{held} connections held by another client, {len(killed)} site sessions killed",
                f"{len(harness.failures(before))} clear 503s while exhausted, "
                f"slowest {max((r.elapsed for r in failed), default=0):.3f} s",
                f"{len(late)} failed after recovery (target 0)",
            ],
        )
    )
    assert server.daemon_pids() == pids, "a daemon process died"
    figures_ = counts(results)
    assert figures_["500"] == 0 and figures_["other"] == 0, harness.explain(failed, origin)
    unclear = [r for r in failed if not harness.clear_503(r)]
    assert not unclear, harness.explain(unclear, origin)
    assert harness.failures(before), "no request saw the exhausted server"
    slow = [r for r in failed if r.elapsed > CONNECT_TIMEOUT + SLACK]
    assert not slow, harness.explain(slow, origin)
    assert value is not None, f"a process did not recover: {per_pid}"
    assert not late, harness.explain(late, origin)


@pytest.mark.short
def test_max_connections_exhausted(fault_site, site_db, pages, figures):
    run_exhaustion(fault_site("prefork"), site_db, pages, figures, total=120, held_for=1.5)


@pytest.mark.long
@pytest.mark.parametrize("variant", ["prefork", "threaded"])
def test_max_connections_exhausted_long(fault_site, site_db, pages, figures, variant):
    run_exhaustion(fault_site(variant), site_db, pages, figures, total=360, held_for=4.0)


def slow_requests(server, count, seconds):
    results = []

    def one():
        results.append(request(server.url, f"/_faults/sleep/?seconds={seconds}", timeout=60))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def run_slow_query(server, site_db, pages, figures, holders, seconds, total):
    pids = server.daemon_pids()
    threads, slow = slow_requests(server, holders, seconds)
    wait_until(
        lambda: (
            sum(1 for s in site_db.sessions() if s["state"] == "active" and SLEEP_TAG in s["query"])
            == holders
        ),
        what=f"{holders} slow queries running",
    )
    held_at = time.monotonic()
    rate = 20
    load = Load(
        server.url, [*pages, "/nodb/"], total, concurrency=8, rate=rate, deadline=total / rate + 60
    )
    load.start()
    origin = load.started_at
    for thread in threads:
        thread.join(120)
    results = load.wait()
    assert load.sent == total
    assert [r.status for r in slow] == [200] * holders, [harness.explain(slow, origin)]
    released_at = max(r.end for r in slow)

    failed = harness.failures(results)
    _, during, after = harness.split(results, held_at, released_at)
    value, per_pid = harness.recovery(results, released_at, pids)
    figures(
        harness.Row.from_results(
            "5",
            server.variant.label,
            results,
            recovery=value,
            notes=[
                f"{holders} x pg_sleep({seconds}) holding "
                + (f"the pool (max_size {holders})" if server.variant.threads > 1 else "a process"),
                f"{len(failed)} 503s, slowest answer {max(r.elapsed for r in results):.3f} s",
                f"{len(harness.failures(after))} failed after release",
            ],
        )
    )
    assert server.daemon_pids() == pids
    figures_ = counts(results)
    assert figures_["500"] == 0 and figures_["other"] == 0, harness.explain(failed, origin)
    unclear = [r for r in failed if not harness.clear_503(r)]
    assert not unclear, harness.explain(unclear, origin)
    # Waiting is bounded by checkout_timeout: no 503 took much longer than that.
    slow_503 = [r for r in failed if r.elapsed > CHECKOUT_TIMEOUT + SLACK]
    assert not slow_503, harness.explain(slow_503, origin)
    # Pages without a query never wait for the pool.
    nodb = [r for r in results if r.path == "/nodb/"]
    assert nodb and all(r.ok for r in nodb), harness.explain(harness.failures(nodb), origin)
    # Nothing deadlocked: after the slow queries, everything is served.
    assert value is not None, per_pid
    assert not harness.failures(after), harness.explain(harness.failures(after), origin)
    return failed, during


def hold_the_pool(fault_site, site_db, pages, figures, seconds, total):
    server = fault_site(
        "threaded", PERSISTENT_MAX_SIZE=2, PERSISTENT_CHECKOUT_TIMEOUT=CHECKOUT_TIMEOUT
    )
    failed, during = run_slow_query(server, site_db, pages, figures, 2, seconds, total)
    assert failed, "no request had to give up waiting for the pool"
    waited = [r for r in failed if r.elapsed >= CHECKOUT_TIMEOUT * 0.9]
    assert len(waited) == len(failed), "a 503 came before checkout_timeout: it did not wait"


@pytest.mark.short
def test_slow_queries_hold_the_pool(fault_site, site_db, pages, figures):
    hold_the_pool(fault_site, site_db, pages, figures, seconds=3, total=60)


@pytest.mark.long
def test_slow_queries_hold_the_pool_long(fault_site, site_db, pages, figures):
    hold_the_pool(fault_site, site_db, pages, figures, seconds=6, total=200)


@pytest.mark.long
def test_slow_query_holds_a_prefork_process(fault_site, site_db, pages, figures):
    server = fault_site("prefork")
    failed, _ = run_slow_query(server, site_db, pages, figures, 1, seconds=6, total=200)
    assert not failed, "the other process should have served every request"
