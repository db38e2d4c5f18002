"""Fault 7: a daemon process killed with SIGKILL in the middle of a request.

mod_wsgi starts a replacement; the killed process's PostgreSQL session ends (the kernel
closes its socket, the server sees EOF), so no orphan connection and no lock outlives it;
the other processes keep serving throughout.
"""

import os
import signal
import threading
import time

import pytest

from harness.load import Load, counts, request
from harness.waiting import wait_until
from tests.faults import harness
from tests.faults.faultviews.views import ADVISORY_KEY, HOLD_TAG

GONE_WITHIN = 10  # "after a few seconds"; what is measured goes in the table


def run_sigkill(server, site_db, pages, figures, *, total, kill_after):
    variant = server.variant
    pids = server.daemon_pids()
    rate = 40
    load = Load(server.url, pages, total, concurrency=8, rate=rate, deadline=total / rate + 60)
    load.start()
    origin = load.started_at
    time.sleep(kill_after)

    held = []
    holder = threading.Thread(
        target=lambda: held.append(request(server.url, "/_faults/hold/?seconds=30", timeout=60))
    )
    holder.start()
    session = wait_until(
        lambda: next(
            (
                s
                for s in site_db.sessions()
                if HOLD_TAG in (s["query"] or "") and s["state"] == "idle in transaction"
            ),
            None,
        ),
        what="the held request's transaction",
    )
    victim, backend_pid = session["process"], session["backend_pid"]
    assert victim in pids
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    # Watch both at once: the replacement daemon, and the killed process's session ending.
    moments = {}
    sessions_now = []

    def settled():
        now = time.monotonic()
        current = server.daemon_pids()
        if (
            "restarted" not in moments
            and len(current) == variant.processes
            and victim not in current
        ):
            moments["restarted"] = now
        sessions_now[:] = site_db.sessions()
        if "gone" not in moments and backend_pid not in {s["backend_pid"] for s in sessions_now}:
            moments["gone"] = now
        return len(moments) == 2

    wait_until(settled, timeout=60, step=0.02, what="replacement daemon and session gone")
    new_pids = server.daemon_pids()
    restarted_at, backend_gone_at = moments["restarted"], moments["gone"]
    assert backend_gone_at - killed_at < GONE_WITHIN, moments
    holder.join(90)
    results = load.wait()
    assert load.sent == total

    # No orphans: every site session belongs to a running daemon process.
    def no_orphans():
        live = set(server.daemon_pids())
        return all(s["process"] in live for s in site_db.sessions())

    wait_until(no_orphans, timeout=GONE_WITHIN, what="no orphan sessions")
    # The killed request's lock died with its session.
    assert site_db.query(
        "SELECT pg_try_advisory_lock(%s), pg_advisory_unlock_all()", [ADVISORY_KEY]
    )[0][0]

    (new_pid,) = set(new_pids) - set(pids)
    first_new = min((r.end for r in results if r.ok and r.pid == new_pid), default=None)
    failed = harness.failures(results)
    in_flight = [r for r in failed if r.start <= killed_at <= r.end]
    late = [r for r in failed if r not in in_flight]
    figures(
        harness.Row.from_results(
            "7",
            variant.label,
            results,
            recovery=None if first_new is None else first_new - killed_at,
            notes=[
                f"held request -> {held[0].status if held else 'none'} (not counted)",
                f"replacement up in {restarted_at - killed_at:.2f} s, killed backend gone "
                f"in {(backend_gone_at - killed_at) * 1000:.0f} ms, no orphans",
                f"{len(in_flight)} in flight in the killed process failed, {len(late)} others",
            ],
        )
    )
    figures_ = counts(results)
    assert held and not held[0].ok, held
    assert not late, harness.explain(late, origin)
    # Only requests inside the killed process can fail: none with prefork (one thread,
    # the held request), at most its threads with the threaded variant.
    assert len(in_flight) <= variant.threads - 1, harness.explain(in_flight, origin)
    assert figures_["2xx"] + len(in_flight) == total
    assert first_new is not None, "the replacement daemon never served a page"
    return results


@pytest.mark.short
def test_sigkill_mid_request(fault_site, site_db, pages, figures):
    run_sigkill(fault_site("prefork"), site_db, pages, figures, total=240, kill_after=1.0)


@pytest.mark.long
@pytest.mark.parametrize("variant", ["prefork", "threaded"])
def test_sigkill_mid_request_long(fault_site, site_db, pages, figures, variant):
    run_sigkill(fault_site(variant), site_db, pages, figures, total=480, kill_after=2.0)
