"""The cells of docs/guarantees.md not covered elsewhere: kills during a statement inside a
transaction or a pinned unit of work, restarts, forks and leaks in each context."""

import pytest
from django.db import (
    DatabaseError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

import persistent_backend
from tests.backend.conftest import default_stats, runs
from tests.backend.test_fork import in_child
from tests.backend.test_pinning import (
    MODES,
    kill_when_running,
    request_in_thread,
)


def one(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def categories(observer, slug):
    return observer.query(
        "SELECT count(*) FROM catalog_category WHERE slug = %s", [slug], dbname=observer.dbname
    )[0][0]


def killed_in_flight(site, scratch, own_application_name, path, query=""):
    """(status, body, stats) of a request whose session is killed during its pg_sleep(30),
    after checking the site still serves the next request."""
    thread, result = request_in_thread(site, path, query)
    kill_when_running(scratch, own_application_name, "pg_sleep(30)", lambda: runs(scratch) == 1)
    thread.join(60)
    status, body = result["response"]
    assert site.json("/pid/")["backend_pid"]
    return status, body, default_stats()


@pytest.mark.parametrize("mode", MODES)
def test_kill_during_a_statement_inside_a_transaction(
    site,
    persistent,
    scratch,
    own_application_name,
    mode,
):
    """The transaction dies with its session: the request fails, its write is gone, and
    nothing is sent again."""
    with persistent(mode=mode):
        status, body, stats = killed_in_flight(
            site, scratch, own_application_name, "/atomic-sleep/"
        )
    assert status == 503, body
    assert categories(scratch, "lost") == 0 and runs(scratch) == 1
    assert stats["retry_refusals"] == {"transaction": 1}


@pytest.mark.parametrize("mode", MODES)
def test_kill_during_a_statement_of_a_pinned_unit_of_work(
    site,
    persistent,
    scratch,
    own_application_name,
    mode,
):
    with persistent(mode=mode):
        status, body, stats = killed_in_flight(
            site, scratch, own_application_name, "/run-once/read/", "sleep=30&pin=1"
        )
    assert status == 503, body
    assert runs(scratch) == 1
    assert stats["retry_refusals"] == {"pinned": 1} and stats["pinned"] == 1


@pytest.mark.parametrize("context", ["outside", "transaction", "pinned"])
def test_restart_between_two_statements(persistent, controllable_cluster, context):
    """A restart ends every session: outside a transaction the next statement moves to a
    new connection; in a transaction or a pinned unit of work it fails, and the next unit
    of work works."""
    with persistent(mode="pool"):
        one("SELECT 1")  # a kept connection
        close_old_connections()
        if context == "outside":
            first = one("SELECT pg_backend_pid()")
            controllable_cluster.restart()
            assert one("SELECT pg_backend_pid()") != first
        elif context == "transaction":
            with pytest.raises(OperationalError), transaction.atomic():
                one("SELECT pg_backend_pid()")
                controllable_cluster.restart()
                one("SELECT pg_backend_pid()")
        else:
            one("SELECT pg_advisory_lock(11)")
            controllable_cluster.restart()
            with pytest.raises(OperationalError):
                one("SELECT pg_backend_pid()")
        close_old_connections()
        assert one("SELECT 1") == 1
        close_old_connections()
        stats = default_stats()
    expected = {"outside": {}, "transaction": {"transaction": 1}, "pinned": {"pinned": 1}}
    assert stats["retry_refusals"] == expected[context]
    assert stats["retried_statements"] == (1 if context == "outside" else 0)


@pytest.mark.parametrize("context", ["transaction", "pinned"])
def test_fork_inside_a_transaction_or_pinned_unit_of_work_fails_in_the_child(
    persistent, observer, context
):
    """The child cannot carry on the parent's transaction or session state: its statements
    fail (nothing runs on a new session); the parent's session and state are intact."""
    with persistent(mode="thread"):
        if context == "transaction":
            atomic = transaction.atomic()
            atomic.__enter__()
        parent_backend = one("SELECT pg_backend_pid()")
        one("SELECT pg_advisory_lock(12)")  # pins (also inside the transaction)

        def child():
            try:
                one("SELECT pg_backend_pid()")
            except DatabaseError:  # OperationalError or, psycopg2, DatabaseError
                return "failed"
            return "ran"

        try:
            assert in_child(child) == "failed"
            assert one("SELECT pg_backend_pid()") == parent_backend
            locks = observer.query(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory'",
                [parent_backend],
            )
            assert locks == [(1,)]
        finally:
            if context == "transaction":
                atomic.__exit__(None, None, None)


def test_leaked_transaction_of_a_pinned_unit_of_work_is_rolled_back_then_reset(
    persistent, observer
):
    with persistent(mode="process"):
        backend = one("SELECT pg_backend_pid()")
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '1234ms'")
            cursor.execute("BEGIN")
            cursor.execute("INSERT INTO catalog_category (name, slug) VALUES ('x', 'leak')")
        close_old_connections()  # the end of the unit of work
        assert one("SELECT pg_backend_pid()") == backend
        assert one("SELECT current_setting('statement_timeout')") == "0"
        close_old_connections()
        stats = default_stats()
    assert categories(observer, "leak") == 0
    assert stats["leaked_transactions"] == 1 and stats["pinned_resets"] == 1


def test_session_set_inside_a_transaction_pins_set_local_does_not(persistent):
    with persistent(mode="process"):
        with transaction.atomic():
            one("SELECT 1")
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = '1s'")
            assert connection.persistent_pinned is None
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = '2s'")  # outlives the transaction
            assert connection.persistent_pinned.reason == "set"
        close_old_connections()
        assert one("SELECT current_setting('statement_timeout')") == "0"
        close_old_connections()
        assert default_stats()["pinned_resets"] == 1
    assert persistent_backend.current_connection_info()["pinned"] is None
