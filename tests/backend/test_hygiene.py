"""Point 6: nothing a request leaves behind reaches the next one."""

import logging
from contextlib import contextmanager

import pytest
from django.db import connection, connections

from tests.backend.conftest import default_stats


def session_state(observer, backend_pid):
    rows = observer.query("SELECT state FROM pg_stat_activity WHERE pid = %s", [backend_pid])
    return rows[0][0] if rows else None


def categories(observer, name):
    return observer.query(
        "SELECT count(*) FROM catalog_category WHERE name = %s", [name], dbname=observer.dbname
    )[0][0]


def leak_warnings(caplog):
    return [
        r
        for r in caplog.records
        if r.name == "persistent_backend" and r.levelno == logging.WARNING
        and "left open by" in r.getMessage()
    ]  # fmt: skip


@pytest.mark.parametrize("mode", ["process", "thread", "pool"])
def test_request_raising_mid_transaction_leaves_no_idle_in_transaction(
    site, persistent, observer, caplog, mode
):
    with persistent(mode=mode):
        backend_pid = site.json("/pid/")["backend_pid"]
        status, _ = site.request("/leak/")
        assert status == 500
        # Read from the server right after the exception: the session is plain idle.
        assert session_state(observer, backend_pid) == "idle"
        assert categories(observer, "leaked") == 0  # the INSERT was rolled back
        stats = default_stats()
        assert stats["leaked_transactions"] == 1
        assert stats["leaked_by_path"] == {"/leak/": 1}
        # The connection was cleaned, not thrown away.
        assert site.json("/pid/")["backend_pid"] == backend_pid
    (warning,) = leak_warnings(caplog)
    assert "/leak/" in warning.getMessage() and str(backend_pid) in warning.getMessage()


def test_leak_is_logged_once_per_path_and_counted_every_time(site, persistent, caplog):
    with persistent(mode="process"):
        for _ in range(3):
            site.get("/leak/", "quiet=1")
        site.request("/leak-error/")
        stats = default_stats()
    assert stats["leaked_transactions"] == 4
    assert stats["leaked_by_path"] == {"/leak/": 3, "/leak-error/": 1}
    messages = [r.getMessage() for r in leak_warnings(caplog)]
    assert len(messages) == 2
    assert "idle in transaction (aborted)" in messages[1]


def test_autocommit_left_off_is_rolled_back_and_restored(site, persistent, observer):
    with persistent(mode="process"):
        backend_pid = site.json("/pid/")["backend_pid"]
        assert site.request("/autocommit-off/")[0] == 500
        assert session_state(observer, backend_pid) == "idle"
        assert categories(observer, "uncommitted") == 0
        # The next request on the same connection is back in autocommit: its write commits.
        site.get("/create/", "name=committed")
        assert site.json("/pid/")["backend_pid"] == backend_pid
        assert categories(observer, "committed") == 1
        assert default_stats()["leaked_transactions"] == 1


def test_atomic_block_that_raised_is_not_a_leak(site, persistent, observer):
    with persistent(mode="process"):
        assert site.request("/atomic-raise/")[0] == 500
        assert categories(observer, "atomic") == 0
        assert default_stats()["leaked_transactions"] == 0


@contextmanager
def database_time_zone(name):
    """DATABASES["default"]["TIME_ZONE"]: Django then SETs it on each new connection."""
    settings_dict = connection.settings_dict
    previous = settings_dict["TIME_ZONE"]

    def forget_cached():
        for attribute in ("timezone", "timezone_name"):
            connections["default"].__dict__.pop(attribute, None)

    settings_dict["TIME_ZONE"] = name
    forget_cached()
    try:
        yield
    finally:
        connection.close()
        settings_dict["TIME_ZONE"] = previous
        forget_cached()


def test_discard_resets_session_state(site, persistent):
    with database_time_zone("America/Lima"), persistent(mode="process", reset="discard"):
        backend_pid = int(site.get("/set-state/"))
        state = site.json("/get-state/")
        resets = default_stats()["resets"]
    assert state["backend_pid"] == backend_pid  # same session, yet nothing leaked into it
    assert state["statement_timeout"] == "0"
    assert state["temp_table"] is False
    assert state["advisory_locks"] == 0
    assert state["prepared"] == 0
    # DISCARD ALL reset the time zone to the server's; Django's setup was applied again.
    assert state["timezone"] == "America/Lima"
    assert resets == 2


def test_session_state_never_reaches_the_next_request_even_with_rollback_reset(site, persistent):
    """``reset: "rollback"`` (the default) costs nothing for requests without session
    state; one that set some is pinned and reset with DISCARD ALL all the same."""
    with database_time_zone("America/Lima"), persistent(mode="process", reset="rollback"):
        backend_pid = int(site.get("/set-state/"))
        state = site.json("/get-state/")
        stats = default_stats()
    assert state["backend_pid"] == backend_pid  # the same session, reset
    assert state["statement_timeout"] == "0"
    assert (state["temp_table"], state["advisory_locks"], state["prepared"]) == (False, 0, 0)
    assert state["timezone"] == "America/Lima"
    assert stats["pinned"] == 1 and stats["pinned_by_reason"] == {"set": 1}
    assert stats["resets"] == stats["pinned_resets"] == 1
