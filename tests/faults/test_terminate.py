"""Fault 1: pg_terminate_backend() of every site connection, repeatedly, during load.

Figure: failed requests. A kept connection killed while idle is noticed by the
zero-round-trip probe at checkout and replaced; one killed between two statements of a
request is noticed by the same probe before the next statement, which moves to a new
connection. Either way the visitor gets the page. A statement the kill caught in flight
(sent, perhaps running) is never sent again (docs/guarantees.md): that request gets the
clear 503 page, as with Django's backend, and is counted in ``retry_refusals["sent"]``.
"""

import time

import pytest

from harness.load import Load, counts
from tests.faults import harness


def run_terminate(server, site_db, pages, figures, *, total, rate, rounds, interval, fault):
    pids = server.daemon_pids()
    load = Load(server.url, pages, total, concurrency=8, rate=rate, deadline=total / rate + 30)
    load.start()
    origin = load.started_at
    kills = []
    observer = site_db.connect()
    try:
        time.sleep(1.0)
        for _ in range(rounds):
            moment = time.monotonic()
            kills.append((moment, site_db.terminate(observer)))
            time.sleep(interval)
    finally:
        observer.close()
    results = load.wait()
    assert load.sent == total, f"only {load.sent} of {total} requests sent before the deadline"

    stats = harness.process_stats(server)
    retried = harness.total(stats, "retried_statements")
    in_flight = sum(s.get("retry_refusals", {}).get("sent", 0) for s in stats.values())
    killed = sum(len(targets) for _, targets in kills)
    rounds_with_kills = sum(1 for _, targets in kills if targets)
    recoveries = [harness.recovery(results, moment, pids)[0] for moment, _ in kills]
    measured = [r for r in recoveries if r is not None]
    failed = harness.failures(results)
    row = figures(
        harness.Row.from_results(
            fault,
            server.variant.label,
            results,
            recovery=max(measured) if measured else None,
            notes=[
                f"{rounds} rounds, {killed} sessions killed",
                f"{retried} statements moved to a new connection",
                f"{in_flight} cut off in flight, never re-sent",
                f"{len(failed)} failed (target: only those)",
            ],
        )
    )

    # Every round found site sessions to kill: the site kept (and re-opened) connections.
    assert rounds_with_kills >= rounds - 1, kills
    assert killed >= rounds
    # No 500, nothing lost, and every failure a clear 503 for a statement cut off in flight.
    figures_ = counts(results)
    assert figures_["500"] == 0 and figures_["other"] == 0, harness.explain(failed, origin)
    assert all(harness.clear_503(r) for r in failed), harness.explain(failed, origin)
    assert len(failed) <= in_flight, (
        f"{len(failed)} failed requests, {in_flight} statements cut off in flight:\n"
        + harness.explain(failed, origin)
    )
    # After the last kill every process served pages again.
    assert recoveries[-1] is not None or len(measured) >= rounds - 1, recoveries
    return row


@pytest.mark.short
@pytest.mark.parametrize("variant", ["prefork", "threaded"])
def test_terminate_during_load(fault_site, site_db, pages, figures, variant):
    server = fault_site(variant)
    run_terminate(
        server, site_db, pages, figures, total=500, rate=100, rounds=5, interval=0.6, fault="1"
    )


@pytest.mark.long
@pytest.mark.parametrize("variant", ["prefork", "threaded"])
def test_terminate_during_load_long(fault_site, site_db, pages, figures, variant):
    server = fault_site(variant)
    run_terminate(
        server, site_db, pages, figures, total=4000, rate=150, rounds=40, interval=0.5, fault="1"
    )
