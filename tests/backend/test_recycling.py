"""Point 7: max_age (with jitter), max_uses and idle_timeout, decided between requests."""

import re
import threading

import pytest
from django.db import connection

from persistent_backend import registry
from persistent_backend.record import expires_at
from tests.backend import urls
from tests.backend.conftest import default_stats, wait_until


def store():
    (only,) = registry.stores()
    return only


def backdate(record, seconds):
    """Pretend the connection has been idle ``seconds`` longer (no sleeping in tests)."""
    record.last_used -= seconds


@pytest.mark.no_db
def test_max_age_jitter_spreads_deadlines_within_ten_percent():
    deadlines = [expires_at(0.0, 1000.0, 0.1) for _ in range(2000)]
    assert all(900.0 <= d <= 1100.0 for d in deadlines)
    assert min(deadlines) < 1000.0 < max(deadlines)  # spread both ways: no herd
    assert expires_at(0.0, None, 0.1) is None
    assert expires_at(5.0, 10.0, 0.0) == 15.0


def test_kept_connections_carry_jittered_deadlines(site, persistent):
    with persistent(mode="pool", max_size=4, max_age=1000):
        urls.release_hold.clear()
        threads = [threading.Thread(target=site.get, args=("/hold/",)) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_until(lambda: default_stats()["in_use"] == 4, message="4 requests holding")
        urls.release_hold.set()
        for thread in threads:
            thread.join()
        lifetimes = [r.expires - r.created for r in store().records]
    assert len(lifetimes) == 4
    assert all(900 <= life <= 1100 for life in lifetimes)
    assert len(set(lifetimes)) == 4


def test_max_age_recycles_at_request_end_never_mid_request(site, persistent, observer):
    urls.exclusive_violations.clear()
    with persistent(mode="process", max_age=0, jitter=0):
        backends = [int(site.get("/exclusive/")) for _ in range(5)]
        stats = default_stats()
        # Each request ran its 4 statements on one session (checked server-side by the
        # view), then its connection was recycled: 5 requests, 5 backends.
        assert urls.exclusive_violations == []
        assert len(set(backends)) == 5
        assert stats["recycles"]["age"] == 5 and stats["size"] == 0
        alive = {row[0] for row in observer.backends()}
        assert not alive & set(backends)


def test_recycled_connections_are_closed_cleanly(site, persistent, pg_cluster):
    """The server saw a Terminate message, not an EOF, for every recycled session.

    PostgreSQL logs "unexpected EOF on client connection" (at DEBUG1, enabled here for
    the site's own sessions) when a client drops its socket without saying goodbye.
    """
    settings_options = connection.settings_dict["OPTIONS"]
    settings_options["options"] = "-c log_min_messages=debug1"
    try:
        with persistent(mode="process", max_uses=1):
            backends = [site.json("/pid/")["backend_pid"] for _ in range(3)]
    finally:
        del settings_options["options"]
    assert default_stats()["recycles"]["uses"] == 0  # a fresh store after the block
    if pg_cluster is None:
        return  # TEST_DATABASE_URL: the server log is not ours to read
    log = pg_cluster.log_file.read_text(errors="replace")
    for backend in backends:
        eof = re.search(rf"\[{backend}\][^\n]*unexpected EOF on client connection", log)
        assert eof is None, eof.group(0)


def test_max_uses(site, persistent):
    with persistent(mode="thread", max_uses=3):
        backends = [site.json("/pid/")["backend_pid"] for _ in range(10)]
        stats = default_stats()
    assert [backends.count(b) for b in dict.fromkeys(backends)] == [3, 3, 3, 1]
    assert stats["recycles"]["uses"] == 3 and stats["opened"] == 4


def test_reopen_after_recycle_spares_the_next_request_the_connect(site, persistent):
    with persistent(mode="process", max_uses=1, reopen=True):
        infos = [site.json("/pid/")["info"] for _ in range(4)]
        stats = default_stats()
    assert [info["reused"] for info in infos] == [False, True, True, True]
    assert len({info["backend_pid"] for info in infos}) == 4
    assert stats["opened"] == 5 and stats["recycles"]["uses"] == 4 and stats["idle"] == 1


def test_idle_timeout_at_checkout(site, persistent, observer):
    with persistent(mode="process", idle_timeout=600):
        first = site.json("/pid/")["backend_pid"]
        (record,) = store().records
        backdate(record, 601)
        second = site.json("/pid/")["backend_pid"]
        assert second != first
        assert default_stats()["recycles"]["idle"] == 1
        assert first not in {row[0] for row in observer.backends()}


def test_idle_timeout_sweep_when_another_connection_returns(site, persistent):
    with persistent(mode="pool", max_size=2, idle_timeout=600):
        urls.release_hold.clear()
        threads = [threading.Thread(target=site.get, args=("/hold/",)) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: default_stats()["in_use"] == 2, message="2 requests holding")
        urls.release_hold.set()
        for thread in threads:
            thread.join()
        cold, hot = store().idle  # LIFO: the last returned is reused first
        backdate(cold, 601)
        assert site.json("/pid/")["backend_pid"] == hot.backend_pid
        stats = default_stats()
    assert stats["recycles"]["idle"] == 1 and stats["size"] == 1


def test_housekeeping_closes_idle_connections_without_traffic(site, persistent, observer):
    with persistent(mode="thread", idle_timeout=0.2, housekeeping=0.05):
        backend = site.json("/pid/")["backend_pid"]
        wait_until(lambda: default_stats()["size"] == 0, message="housekeeping")
        assert default_stats()["recycles"]["idle"] == 1
        wait_until(lambda: backend not in {row[0] for row in observer.backends()})
