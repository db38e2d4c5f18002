"""Point 5 (threads never share a connection) and pool waits / timeouts (point 9)."""

import gc
import sys
import threading

import pytest
from django.db import close_old_connections, connection
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


def test_a_checkout_that_lost_a_returned_connection_gets_the_next_one_handed_over(persistent):
    """A returned connection wakes the oldest waiter but stays up for grabs: under the GIL
    the returning thread often takes it again first. A waiter that lost it that way is
    next handed the connection directly, so no checkout starves behind busy threads."""
    with persistent(mode="pool", max_size=1, checkout_timeout=60):
        connection.ensure_connection()
        record = connection.persistent_record
        results = {}

        def waiter():
            from django.db import connection as own  # this thread's own wrapper

            own.ensure_connection()
            results["record"] = own.persistent_record
            results["waits"] = default_stats()["checkout_waits"]
            close_old_connections()

        thread = threading.Thread(target=waiter)
        thread.start()
        wait_until(lambda: default_stats()["waiting"] == 1, message="waiter in line")
        interval = sys.getswitchinterval()
        sys.setswitchinterval(60)  # the woken waiter cannot run before this thread blocks
        try:
            close_old_connections()  # returned: the waiter is woken...
            connection.ensure_connection()  # ...but this thread takes it back first
        finally:
            sys.setswitchinterval(interval)
        assert connection.persistent_record is record
        wait_until(lambda: default_stats()["waiting"] == 1, message="waiter in line again")
        close_old_connections()  # handed over: not left idle for another thread to grab
        stats = default_stats()
        assert (stats["idle"], stats["in_use"], stats["waiting"]) == (0, 1, 0)
        thread.join(30)
        assert results["record"] is record
        assert results["waits"] == 1  # one checkout that waited, woken twice
        assert default_stats()["checkout_timeouts"] == 0


def test_a_returned_connection_wakes_one_waiter_until_that_one_has_run(persistent):
    """Not a stampede: one return wakes the oldest waiter, and further returns wake nobody
    else while it has not run yet (it will take what is idle then)."""
    with persistent(mode="pool", max_size=1, checkout_timeout=60):
        connection.ensure_connection()
        served = []

        def waiter():
            from django.db import connection as own

            own.ensure_connection()
            served.append(own.persistent_record.backend_pid)
            close_old_connections()

        threads = [threading.Thread(target=waiter) for _ in range(3)]
        for thread in threads:
            thread.start()
        wait_until(lambda: default_stats()["waiting"] == 3, message="three waiters in line")
        interval = sys.getswitchinterval()
        sys.setswitchinterval(60)  # no woken waiter runs before this thread blocks
        try:
            close_old_connections()
            after_first = default_stats()["waiting"]
            connection.ensure_connection()
            close_old_connections()
            after_second = default_stats()["waiting"]
        finally:
            sys.setswitchinterval(interval)
        assert (after_first, after_second) == (2, 2)
        for thread in threads:
            thread.join(30)
        stats = default_stats()
        assert len(served) == 3 and len(set(served)) == 1  # all served, one connection
        assert (stats["checkout_timeouts"], stats["opened"]) == (0, 1)


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
