"""Point 5 (threads never share a connection) and pool waits / timeouts (point 9)."""

import gc
import threading

import pytest
from django.db import connection
from django.db.utils import OperationalError

from persistent_backend import CheckoutTimeout
from tests.backend import urls
from tests.backend.conftest import default_stats, wait_until

THREADS = 12
REQUESTS_PER_THREAD = 40


def run_threads(site, count, per_thread, path="/exclusive/"):
    barrier = threading.Barrier(count)
    failures = []

    def worker(index):
        barrier.wait()
        for n in range(per_thread):
            status, body = site.request(path, f"n={index}-{n}")
            if status != 200:
                failures.append((status, body[:300]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.parametrize(
    "options, bound",
    [
        ({"mode": "thread"}, THREADS),
        ({"mode": "pool", "max_size": 3}, 3),
        # process mode under threads (a misconfiguration the checks report): still safe.
        ({"mode": "process"}, 1),
    ],
    ids=["thread", "pool", "process"],
)
def test_threads_never_share_a_connection(
    site, persistent, observer, own_application_name, options, bound
):
    urls.exclusive_busy.clear()
    urls.exclusive_violations.clear()
    with persistent(checkout_timeout=60, **options):
        failures = run_threads(site, THREADS, REQUESTS_PER_THREAD)
        assert failures == []
        # Checked by each request on the server: nobody else wrote its session variable.
        assert urls.exclusive_violations == []
        stats = default_stats()
        assert stats["requests"] == THREADS * REQUESTS_PER_THREAD
        assert stats["in_use"] == 0
        # Every connection opened is still kept, except those of client threads that have
        # already ended (thread mode closes a finished thread's connection: "closed").
        assert stats["opened"] == stats["size"] + stats["closed"] <= bound
        assert not any(stats["reconnects"].values()) and stats["discards"] == {}
        assert len(observer.backends(own_application_name)) == stats["size"]
        if options["mode"] == "thread":
            assert stats["opened"] == THREADS  # one per thread, never a second
        else:
            assert stats["closed"] == 0
        if options["mode"] == "process":
            assert stats["size"] == 1


def test_pool_waiter_gets_the_returned_connection(site, persistent):
    urls.release_hold.clear()
    urls.hold_started.clear()
    with persistent(mode="pool", max_size=1, checkout_timeout=60):
        holder = threading.Thread(target=site.get, args=("/hold/",))
        holder.start()
        assert urls.hold_started.wait(30)
        results = []
        waiter = threading.Thread(target=lambda: results.append(site.json("/pid/")))
        waiter.start()
        wait_until(lambda: default_stats()["checkout_waits"] == 1, message="waiter blocked")
        assert results == []
        urls.release_hold.set()
        holder.join()
        waiter.join()
        stats = default_stats()
        assert len(results) == 1 and results[0]["info"]["reused"] is True
        assert stats["opened"] == 1 and stats["checkout_timeouts"] == 0
        assert stats["checkout_wait_seconds"] > 0


def test_pool_checkout_timeout_is_a_clear_503(site, persistent, caplog):
    assert issubclass(CheckoutTimeout, OperationalError)
    urls.release_hold.clear()
    urls.hold_started.clear()
    with persistent(mode="pool", max_size=1, checkout_timeout=0.2):
        holder = threading.Thread(target=site.get, args=("/hold/",))
        holder.start()
        try:
            assert urls.hold_started.wait(30)
            status, body = site.request("/pid/")
        finally:
            urls.release_hold.set()
            holder.join()
        assert status == 503, body
        assert "database is unavailable" in body
        stats = default_stats()
        assert stats["checkout_timeouts"] == 1 and stats["checkout_waits"] == 1
        assert stats["checkout_wait_seconds"] >= 0.2
    assert any("no free connection for database 'default'" in r.message for r in caplog.records)


def test_thread_ending_without_returning_its_connection_frees_the_pool_slot(persistent, caplog):
    """A background thread that queried and ended, never calling close_old_connections()."""
    with persistent(mode="pool", max_size=1, checkout_timeout=60):

        def background():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")

        thread = threading.Thread(target=background)
        thread.start()
        thread.join()
        assert default_stats()["in_use"] == 1  # the pool's only connection, held by no one
        del thread
        gc.collect()  # the thread's Django connection object is collected
        with connection.cursor() as cursor:  # would wait for the slot without the cleanup
            cursor.execute("SELECT 1")
        stats = default_stats()
    assert stats["discards"] == {"abandoned": 1}
    assert stats["opened"] == 2
    assert any("without returning its connection" in r.getMessage() for r in caplog.records)


def test_a_new_threads_feature_checks_do_not_close_kept_connections(site, persistent):
    """Django's temporary_connection() (pg_version for features) returns, never closes."""
    with persistent(mode="pool", max_size=2):
        site.get("/pid/")  # one kept, idle connection
        results = []

        def fresh_thread():
            results.append(connection.features.is_postgresql_16)  # pg_version: no checkout
            with connection.temporary_connection() as cursor:
                cursor.execute("SELECT 1")
            results.append(connection.connection is None)

        thread = threading.Thread(target=fresh_thread)
        thread.start()
        thread.join()
        stats = default_stats()
    assert len(results) == 2 and results[1] is True
    assert stats["opened"] == 1 and stats["closed"] == 0 and stats["idle"] == 1
    assert stats["requests"] == 2
