"""Point 3 in-process: kills, deaths mid-request, a restart and an outage cost no 500."""

import threading

import pytest
from django.db import (
    OperationalError,
    ProgrammingError,
    close_old_connections,
    connection,
    transaction,
)

from tests.backend.conftest import default_stats, wait_until


def test_terminated_pool_connections_are_replaced(site, persistent, observer):
    """Three kept connections all killed by the server: the next request still succeeds."""
    import threading

    from tests.backend import urls

    with persistent(mode="pool", max_size=3):
        # Three concurrent requests: three connections in the pool.
        urls.release_hold.clear()
        threads = [threading.Thread(target=site.get, args=("/hold/",)) for _ in range(3)]
        for thread in threads:
            thread.start()
        wait_until(lambda: default_stats()["in_use"] == 3, message="3 requests holding")
        urls.release_hold.set()
        for thread in threads:
            thread.join()
        assert default_stats()["idle"] == 3
        killed = observer.terminate()
        assert len(killed) == 3
        for _ in range(5):
            site.get("/pid/")
        stats = default_stats()
        assert stats["reconnects"]["terminated"] == 3
        assert stats["size"] == 1 and stats["opened"] == 4


def test_death_mid_request_is_a_503_then_the_next_request_works(site, persistent):
    """A statement that ends its own session (pg_terminate_backend(pg_backend_pid())) was
    sent: it is never sent again. A 503, then the next request works."""
    with persistent(mode="process"):
        first = site.json("/pid/")["backend_pid"]
        status, body = site.request("/kill-self/")
        assert status == 503, body
        assert "database is unavailable" in body
        second = site.json("/pid/")["backend_pid"]
        assert second != first
        stats = default_stats()
        assert stats["retried_statements"] == 0
        assert stats["retry_refusals"] == {"sent": 1}
        assert stats["reconnects"]["broken"] == 1
        assert stats["size"] == 1


@pytest.mark.parametrize("mode", ["process", "pool", "thread"])
def test_restart_costs_no_error(site, persistent, controllable_cluster, mode):
    with persistent(mode=mode):
        first = site.json("/pid/")["backend_pid"]
        controllable_cluster.restart()
        second = site.json("/pid/")["backend_pid"]
        assert second != first
        assert default_stats()["reconnects"]["terminated"] == 1


def test_outage_is_a_fast_503_and_recovers_alone(site, persistent, controllable_cluster):
    with persistent(mode="process"):
        site.get("/pid/")
        controllable_cluster.stop()
        for _ in range(3):
            status, body = site.request("/pid/")
            assert status == 503, body
            assert "database is unavailable" in body and "Traceback" not in body
        stats = default_stats()
        assert stats["connect_failures"] == 3
        assert stats["size"] == 0 and stats["opening"] == 0
        controllable_cluster.start()
        controllable_cluster.wait_ready()
        site.get("/pid/")
        assert default_stats()["size"] == 1


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def kill(observer, pid):
    observer.query("SELECT pg_terminate_backend(%s, 10000)", [pid])


def test_kill_between_statements_a_statement_moves_before_it_is_sent(persistent, observer):
    """Outside a transaction, the probe before sending sees the session the server ended:
    the statement goes to a new connection, never having been sent to the old one."""
    with persistent(mode="process"):
        first = backend_pid()
        kill(observer, first)
        second = backend_pid()
        assert second != first
        stats = default_stats()
        assert stats["retried_statements"] == 1 and stats["retry_refusals"] == {}
        assert stats["reconnects"]["terminated"] == 1 and stats["size"] == 1


def test_kill_between_statements_fails_that_unit_of_work_with_retry_off(persistent, observer):
    """``retry: False``: nothing moves to another connection; the statement fails."""
    with persistent(mode="process", retry=False):
        first = backend_pid()
        kill(observer, first)
        with pytest.raises(OperationalError):
            backend_pid()
        close_old_connections()
        assert backend_pid() != first  # the next unit of work reconnects
        assert default_stats()["reconnects"]["broken"] == 1
        assert default_stats()["retried_statements"] == 0
        assert default_stats()["retry_refusals"] == {"disabled": 1}


def test_nothing_is_retried_inside_a_transaction(persistent, observer):
    """A transaction dies with its connection: the statement fails, nothing is replayed."""
    with persistent(mode="process"):
        with pytest.raises(OperationalError), transaction.atomic():
            kill(observer, backend_pid())
            backend_pid()
        close_old_connections()
        backend_pid()
        assert default_stats()["retried_statements"] == 0
        assert default_stats()["retry_refusals"] == {"transaction": 1}


def test_a_write_cut_off_mid_statement_is_not_run_again(persistent, observer):
    """A write the server ended while it ran is never re-sent (it may not be a read)."""
    with persistent(mode="process"):
        pid = backend_pid()
        timer = threading.Timer(0.5, kill, [observer, pid])
        timer.start()
        try:
            with pytest.raises(OperationalError), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO catalog_category (name, slug) "
                    "SELECT 'cut-off', 'cut-off' FROM pg_sleep(5)"
                )
        finally:
            timer.join()
        close_old_connections()
        assert count_categories("cut-off") == 0
        assert default_stats()["retried_statements"] == 0
        assert default_stats()["retry_refusals"] == {"sent": 1}


def test_a_write_goes_to_a_new_connection_if_the_old_one_is_already_dead(persistent, observer):
    """Before a write is sent the socket is probed (no round trip): a connection the
    server already ended is replaced first, so the write runs exactly once."""
    with persistent(mode="process"):
        first = backend_pid()
        kill(observer, first)  # waits until the backend has exited
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO catalog_category (name, slug) VALUES ('once', 'once') "
                "RETURNING pg_backend_pid()"
            )
            assert cursor.fetchone()[0] != first
        assert count_categories("once") == 1
        stats = default_stats()
        assert stats["retried_statements"] == 1 and stats["reconnects"]["terminated"] == 1


def count_categories(slug):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM catalog_category WHERE slug = %s", [slug])
        return cursor.fetchone()[0]


def test_sql_error_keeps_a_live_connection(persistent):
    with persistent(mode="process"):
        first = backend_pid()
        close_old_connections()
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        close_old_connections()
        assert backend_pid() == first
        assert default_stats()["opened"] == 1
