"""Issue 11, store edge cases (each with its test), Django's own pool refused at run time
(issue 15), and process mode's contract for a second thread."""

import gc
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, connections

from persistent_backend import registry
from tests.backend import urls
from tests.backend.conftest import default_stats, wait_until


def held_backends(observer, own_application_name):
    return [row[0] for row in observer.backends(own_application_name)]


def start_holder(site):
    """A request that keeps its connection until ``urls.release_hold`` is set."""
    urls.release_hold.clear()
    urls.hold_started.clear()
    holder = threading.Thread(target=site.get, args=("/hold/",))
    holder.start()
    assert urls.hold_started.wait(30)
    return holder


def test_checkout_wait_never_exceeds_checkout_timeout_in_total(site, persistent, observer):
    """The waiter is handed a dead connection late in its wait and, while it discards
    it, another thread takes the freed slot: it waits only for what is left of its
    timeout (before: a whole new timeout on each dead connection met)."""
    timeout = 2.0
    with persistent(mode="pool", max_size=1, checkout_timeout=timeout):
        holder = start_holder(site)
        store = registry.stores()[0]
        (held,) = store.records
        real_discard = store.discard
        competitor = []

        def discard_then_lose_the_slot(record, **kwargs):
            real_discard(record, **kwargs)
            if not competitor:
                competitor.append(store.reserve())  # another thread's reservation

        store.discard = discard_then_lose_the_slot
        result = {}

        def waiter():
            started = time.monotonic()
            result["response"] = site.request("/pid/")
            result["elapsed"] = time.monotonic() - started

        thread = threading.Thread(target=waiter)
        thread.start()
        try:
            wait_until(lambda: store.snapshot()["checkout_waits"] == 1, message="waiter blocked")
            time.sleep(timeout * 0.75)
            observer.query("SELECT pg_terminate_backend(%s, 10000)", [held.backend_pid])
            urls.release_hold.set()  # the dead connection goes back to the waiter
            thread.join(30)
        finally:
            urls.release_hold.set()
            holder.join()
            if competitor == [True]:
                store.open_failed()
        status, body = result["response"]
        stats = default_stats()
    assert competitor == [True]
    assert status == 503 and "database is unavailable" in body
    assert stats["checkout_timeouts"] == 1 and stats["checkout_waits"] == 1
    assert stats["reconnects"]["terminated"] == 1
    # Before: 0.75 x timeout, then a whole new timeout (1.75 x). Now: 1 x (+ scheduling).
    assert result["elapsed"] < timeout * 1.5, result["elapsed"]


def test_store_retired_between_reserving_and_opening_leaks_no_session(
    persistent, observer, own_application_name
):
    """A replacement opened after a recycle (``reopen``) while the settings changed."""
    with persistent(mode="pool", max_size=2):
        connection.ensure_connection()
        close_old_connections()
        store = connection.persistent_store()
        real_reserve = store.reserve

        def reserve_then_settings_change():
            reserved = real_reserve()
            registry.reset()  # retires the store: its idle connection closes now
            return reserved

        store.reserve = reserve_then_settings_change
        connection._reopen(store)
        assert store.retired and store.records == set()
        # Closed (the idle one by the retirement, the replacement once opened); the server
        # processes end a moment after their sockets.
        wait_until(
            lambda: held_backends(observer, own_application_name) == [],
            message="the closed connections' backends gone",
        )


def test_connection_abandoned_in_a_retired_store_is_closed(
    persistent, observer, own_application_name, caplog
):
    """A thread that queried and ended without close_old_connections(), after the
    settings changed: its connection is closed at the next checkout, not at exit."""
    with persistent(mode="pool", max_size=2):
        pids = []

        def background():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])

        thread = threading.Thread(target=background)
        thread.start()
        thread.join()
        connection.settings_dict["OPTIONS"]["persistent"]["max_size"] = 3  # new settings
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # a new store; the old one is retired, not empty
        close_old_connections()
        assert pids[0] in held_backends(observer, own_application_name)
        del thread
        gc.collect()  # the thread's Django connection object is collected
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        close_old_connections()
        # Closed by that checkout; the server process ends a moment after the socket.
        wait_until(
            lambda: pids[0] not in held_backends(observer, own_application_name),
            message="the abandoned connection's backend gone",
        )
    assert any("without returning its connection" in r.getMessage() for r in caplog.records)


def test_close_closes_this_connection_and_the_idle_ones_not_busy_ones(
    site, persistent, observer, own_application_name
):
    """``connection.close()`` (and so ``connections.close_all()``, before fork): its own
    connection and every idle one of the process; another thread's busy one is left to
    go back normally."""
    with persistent(mode="pool", max_size=3):
        holder = start_holder(site)
        try:
            busy = [r.backend_pid for r in registry.stores()[0].records]
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                own = cursor.fetchone()[0]  # held by this thread
            idle = []
            thread = threading.Thread(target=lambda: idle.append(site.json("/pid/")))
            thread.start()
            thread.join()
            idle = [idle[0]["backend_pid"]]  # opened by the thread, now idle
            assert len({*busy, *idle, own}) == 3
            connection.close()
            # Closed now; each server process ends a moment after its socket. The busy one
            # stays as long as the holder holds it (released below).
            wait_until(
                lambda: held_backends(observer, own_application_name) == busy,
                message="only the busy connection's backend left",
            )
        finally:
            urls.release_hold.set()
            holder.join()
        stats = default_stats()
    assert stats["size"] == 1 and stats["idle"] == 1


def test_process_mode_second_thread_waits_then_gets_checkout_timeout(site, persistent):
    """Process mode lends its one connection to one thread at a time: a second thread
    waits up to checkout_timeout, then gets CheckoutTimeout (the site's 503); it never
    shares the connection. The next request after the first one returns works."""
    with persistent(mode="process", checkout_timeout=0.3):
        holder = start_holder(site)
        try:
            status, body = site.request("/pid/")
        finally:
            urls.release_hold.set()
            holder.join()
        info = site.json("/pid/")["info"]
        stats = default_stats()
    assert status == 503 and "database is unavailable" in body
    assert stats["checkout_timeouts"] == 1 and stats["size"] == 1
    assert info["reused"] is True


def test_django_pool_is_refused_before_any_connection(persistent, observer, own_application_name):
    """OPTIONS["pool"] (Django's own psycopg 3 pool): refused at run time, before Django's
    get_connection_params() pops it, with no pool and no connection made."""
    options = connection.settings_dict["OPTIONS"]
    pools = type(connections["default"])._connection_pools
    with persistent(mode="pool"):
        options["pool"] = {"min_size": 1}
        try:
            with pytest.raises(ImproperlyConfigured, match=r'remove OPTIONS\["pool"\]'):
                connection.ensure_connection()
            assert connection.pool is None
        finally:
            options.pop("pool")
        assert connection.connection is None
        assert "default" not in pools
        assert held_backends(observer, own_application_name) == []
        connection.ensure_connection()  # without it, fine
