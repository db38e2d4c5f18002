"""The zero-round-trip probe on real connections of the driver this run uses, in every state
a kept connection can be found in: bound once while the connection was alive
(``liveness.Checks``, as a kept connection's record holds it) and made for one call
(``liveness.probe()``), the verdict is the same and right."""

import select

import pytest
from django.db import connection

from persistent_backend import liveness


@pytest.fixture(autouse=True, params=["libc", "select"])
def poll_path(request, monkeypatch):
    """Every test twice: ``Checks`` polling through libc's ``poll()`` with the GIL held (the
    path taken on Linux) and through ``select.poll`` (where libc's cannot be called)."""
    if request.param == "select":
        monkeypatch.setattr(liveness, "_POLL", None)
    return request.param


def test_checks_poll_through_libc_holding_the_gil_on_linux(raw, poll_path):
    checks = liveness.Checks(raw)
    if poll_path == "libc":
        assert liveness._POLL is not None and checks._pollfd.fd == raw.fileno()
        assert checks._poller is None
    else:
        assert checks._pollfd is None and checks._poller is not None


@pytest.fixture
def raw():
    """A driver connection of its own (not one of the store's), autocommit like Django's."""
    conn = connection.get_new_connection(connection.get_connection_params())
    conn.autocommit = True
    yield conn
    conn.close()


def run(conn, sql):
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def backend_pid(conn):
    return conn.info.backend_pid


def verdicts(conn):
    """(module probe, bound probe) of ``conn``: they must always agree."""
    checks = liveness.Checks(conn)
    return liveness.probe(conn), checks.probe()


def test_a_live_idle_connection_is_alive_both_ways(raw):
    by_module, bound = verdicts(raw)
    assert by_module == bound == liveness.ALIVE
    checks = liveness.Checks(raw)
    assert checks.transaction_status() == liveness.TRANSACTION_IDLE
    assert checks.status() == liveness.TRANSACTION_IDLE
    assert checks.in_transaction() is False


def test_a_connection_terminated_by_the_server_is_terminated_both_ways(raw, observer):
    checks = liveness.Checks(raw)  # bound while alive, as a kept connection's is
    observer.query("SELECT pg_terminate_backend(%s, 10000)", [backend_pid(raw)])
    by_module, bound = liveness.probe(raw), checks.probe()
    assert by_module == bound
    assert not bound.alive and bound.reason == "terminated"
    assert "terminating connection due to administrator command" in bound.detail


def test_a_connection_closed_by_the_client_is_broken_both_ways(raw):
    checks = liveness.Checks(raw)
    raw.close()
    by_module, bound = liveness.probe(raw), checks.probe()
    assert by_module == bound
    assert not bound.alive and bound.reason == "broken"
    assert checks.in_transaction() is True  # unknown counts as a transaction: nothing moves
    assert checks.status() is None  # what a returned connection is discarded for
    assert checks.transaction_status() == liveness.transaction_status(raw)


def test_an_open_transaction_is_at_rest_and_reported(raw):
    checks = liveness.Checks(raw)
    run(raw, "BEGIN")
    assert checks.transaction_status() == liveness.TRANSACTION_INTRANS
    assert checks.status() == liveness.TRANSACTION_INTRANS
    assert checks.in_transaction() is True
    by_module, bound = liveness.probe(raw), checks.probe()
    assert by_module == bound == liveness.ALIVE
    run(raw, "COMMIT")
    assert checks.in_transaction() is False


def test_a_pending_notification_is_harmless_both_ways(raw, observer):
    """A readable socket takes the slow way (peek and parse), which must still say alive."""
    checks = liveness.Checks(raw)
    run(raw, "LISTEN pb_liveness")
    observer.query("NOTIFY pb_liveness", dbname=observer.dbname)
    readable, _, _ = select.select([raw.fileno()], [], [], 10)
    assert readable, "the notification never arrived"
    by_module, bound = liveness.probe(raw), checks.probe()
    assert by_module == bound == liveness.ALIVE
