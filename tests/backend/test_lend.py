"""Lending per transaction (``OPTIONS["persistent"]["lend"] = "transaction"``, lending.py).

A unit of work here is what runs between two ``close_old_connections()`` in the test's
thread (the calls Django makes at request_started / request_finished). One file for all
of lending's rules (docs/backend.md, "Lending per transaction"), hence its length.
"""

import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, connections, transaction

import persistent_backend
from persistent_backend import CheckoutTimeout, registry
from persistent_backend.environment import ServerShape
from persistent_backend.options import Options
from tests.backend.conftest import default_stats

LEND = {"mode": "pool", "lend": "transaction"}


def backend_pid(cursor=None):
    if cursor is not None:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]
    with connection.cursor() as own:
        return backend_pid(own)


def held():
    return connection.persistent_record is not None


def in_other_thread(function):
    """Run ``function`` in a new thread as one unit of work; its result or exception."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            close_old_connections()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return outcome


# -- the option ------------------------------------------------------------------------
@pytest.mark.no_db
def test_lend_defaults_to_request():
    assert Options.from_settings({"OPTIONS": {}}).lend == "request"


@pytest.mark.no_db
@pytest.mark.parametrize(
    "bad, message",
    [
        ({"lend": "statement"}, r'\["lend"\] = .statement.: use one of request, transaction'),
        ({"lend": None}, "use one of request, transaction"),
        ({"lend": "transaction", "reset": "discard"}, "DISCARD ALL per statement"),
    ],
)
def test_invalid_lend_is_a_clear_error(bad, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        Options.from_settings({"OPTIONS": {"persistent": bad}})


@pytest.mark.parametrize(
    "mode, shape, effective",
    [
        ("pool", ServerShape("other"), "transaction"),
        ("process", ServerShape("other"), "request"),
        ("thread", ServerShape("other"), "request"),
        ("auto", ServerShape("mod_wsgi", 1, 8), "transaction"),  # a threaded daemon: pool
        ("auto", ServerShape("mod_wsgi", 2, 1), "request"),  # prefork: process
        ("pool", ServerShape("mod_wsgi", 2, 1), "request"),  # one thread: nobody to lend to
        ("pool", ServerShape("mod_wsgi", 2, 4), "transaction"),
        ("pool", ServerShape("runserver", 1, 1), "request"),  # --nothreading
    ],
)
def test_lend_changes_pool_mode_of_threaded_servers_only(monkeypatch, mode, shape, effective):
    monkeypatch.setattr(registry.environment, "detect_shape", lambda options: shape)
    settings_dict = {
        **connection.settings_dict,
        "OPTIONS": {"persistent": {"mode": mode, "lend": "transaction"}},
    }
    wrapper = type(connections["default"])(settings_dict, alias="lend-probe")
    store = registry.new_store(wrapper)
    assert store.lend == effective == store.snapshot()["lend"]


# -- a real page ------------------------------------------------------------------------
def test_a_page_lends_after_each_statement_and_sends_nothing_extra(
    page_site, persistent, observer, demo_data
):
    from catalog.models import Item

    observer.statements_enabled()
    item_id = Item.objects.order_by("id").first().id
    path = f"/items/{item_id}/"
    with persistent(mode="pool", max_size=2):
        expected = page_site.get(path)
    with persistent(max_size=2, **LEND):
        page_site.get(path)  # opens the connection (and sets it up)
        observer.reset_statements()
        requests = 20
        for _ in range(requests):
            assert page_site.get(path) == expected
            assert persistent_backend.current_connection_info()["lends"] == 4  # 4 SELECTs
        stats = default_stats()
        assert (stats["opened"], stats["in_use"], stats["lends"]) == (1, 0, 4 * (requests + 1))
        assert stats["requests"] == requests + 1 and stats["borrows"] == 3 * (requests + 1)
    statements = observer.statements()
    assert sum(calls for _, calls in statements) == 4 * requests, statements


# -- what lends and what keeps -----------------------------------------------------------
def test_four_autocommit_reads_lend_four_times_and_end_holding_nothing(persistent):
    with persistent(max_size=2, **LEND):
        for n in range(4):
            assert isinstance(backend_pid(), int)
            assert not held() and default_stats()["in_use"] == 0, n
        stats = default_stats()
        assert (stats["lends"], stats["borrows"], stats["requests"]) == (4, 3, 1)
        info = persistent_backend.current_connection_info()
        assert info["lends"] == 4 and info["held"] is False
        close_old_connections()
        stats = default_stats()
        assert (stats["in_use"], stats["lends"], stats["requests"]) == (0, 4, 1)
        assert stats["opened"] == 1  # borrowed again: the same connection, never a second


def test_lend_request_keeps_the_connection_to_the_end(persistent):
    with persistent(mode="pool", max_size=2):
        for _ in range(4):
            backend_pid()
            assert held()
        close_old_connections()
        stats = default_stats()
        assert (stats["lend"], stats["lends"], stats["borrows"], stats["in_use"]) == (
            "request",
            0,
            0,
            0,
        )


def test_an_atomic_block_keeps_one_connection_to_its_end(persistent):
    hooks = []
    with persistent(max_size=1, checkout_timeout=0, **LEND):
        with transaction.atomic():
            first = backend_pid()
            transaction.on_commit(lambda: hooks.append(backend_pid()))
            # Held: with one connection and no wait, another thread cannot have it.
            other = in_other_thread(backend_pid)
            assert isinstance(other.get("error"), CheckoutTimeout), other
            with transaction.atomic():  # a savepoint: still the same connection
                assert backend_pid() == first
            assert backend_pid() == first and held()
            assert default_stats()["lends"] == 0
        assert hooks == [first]  # ran after the commit, before the connection went back
        assert not held()
        assert default_stats()["lends"] == 1  # once, after the block (and its hook)
        assert in_other_thread(backend_pid)["value"] == first


def test_a_rolled_back_atomic_block_lends_after_its_end(persistent):
    with persistent(max_size=1, **LEND):
        with pytest.raises(ZeroDivisionError):
            with transaction.atomic():
                backend_pid()
                raise ZeroDivisionError
        assert not held() and default_stats()["lends"] == 1


def test_a_transaction_opened_by_hand_keeps_the_connection(persistent):
    with persistent(max_size=2, **LEND):
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            first = backend_pid(cursor)
            assert held() and backend_pid(cursor) == first
            cursor.execute("COMMIT")
        assert not held() and default_stats()["lends"] == 1


def test_autocommit_off_keeps_the_connection(persistent):
    with persistent(max_size=2, **LEND):
        transaction.set_autocommit(False)
        try:
            first = backend_pid()
            assert held() and backend_pid() == first
            transaction.commit()
            assert held()
        finally:
            transaction.set_autocommit(True)
        assert not held() and default_stats()["lends"] == 1


@pytest.mark.parametrize(
    "how", ["SET statement_timeout = 12345", "pin()"], ids=["session_state", "pin"]
)
def test_a_pinned_unit_of_work_keeps_its_connection(persistent, how):
    with persistent(max_size=2, **LEND):
        with connection.cursor() as cursor:
            if how == "pin()":
                persistent_backend.pin()
            else:
                cursor.execute(how)
            first = backend_pid(cursor)
            for _ in range(3):
                assert backend_pid(cursor) == first and held()
        assert backend_pid() == first and held()
        assert default_stats()["lends"] == 0
        close_old_connections()
        stats = default_stats()
        assert (stats["in_use"], stats["pinned"], stats["pinned_resets"]) == (0, 1, 1)


def test_a_server_side_cursor_keeps_the_connection_while_it_iterates(persistent):
    with persistent(max_size=2, **LEND):
        pids = set()
        with connection.chunked_cursor() as server_side:
            server_side.execute("SELECT n, pg_backend_pid() FROM generate_series(1, 6) n")
            seen = []
            while rows := server_side.fetchmany(2):
                seen.extend(n for n, _ in rows)
                pids.update(pid for _, pid in rows)
                pids.add(backend_pid())  # another statement meanwhile: same connection
                assert held()
        assert seen == [1, 2, 3, 4, 5, 6] and len(pids) == 1
        assert default_stats()["lends"] == 0


def test_a_kept_cursor_never_runs_on_a_connection_lent_to_another_thread(persistent):
    with persistent(max_size=2, **LEND):
        cursor = connection.cursor()
        first = backend_pid(cursor)
        assert not held()
        holding = threading.Event()
        release = threading.Event()

        def hold_it():
            with transaction.atomic():
                pid = backend_pid()
                holding.set()
                assert release.wait(30)
                assert backend_pid() == pid  # its session was never used by the other
                return pid

        thread_result = {}
        thread = threading.Thread(
            target=lambda: thread_result.update(in_other_thread(hold_it)), daemon=True
        )
        thread.start()
        assert holding.wait(30)
        try:
            # The other thread took the connection this cursor ran on: the cursor's next
            # statement borrows the other one and runs on a fresh driver cursor.
            second = backend_pid(cursor)
        finally:
            release.set()
            thread.join(30)
        assert thread_result.get("value") == first, thread_result
        assert second != first
        cursor.close()


def test_reading_the_driver_connection_borrows_and_keeps_it(persistent):
    with persistent(max_size=2, **LEND):
        first = backend_pid()
        assert not held()
        raw = connection.connection  # lent: borrowed, and kept to the end of the unit
        assert raw is not None and raw.info.backend_pid == first
        assert held() and backend_pid() == first and held()
        assert connection.persistent_held == "connection.connection"
        close_old_connections()
        assert not held() and connection.persistent_held is None
        backend_pid()
        assert not held()  # the next unit of work lends again


def test_a_cursor_reaching_its_driver_connection_keeps_it(persistent):
    with persistent(max_size=2, **LEND):
        with connection.cursor() as cursor:
            first = backend_pid(cursor)
            assert not held()
            raw = cursor.connection
            assert held() and raw is connection.connection
            assert connection.persistent_held == "cursor.connection"
            assert backend_pid(cursor) == first and held()


def test_close_temporary_connection_and_ensure_connection_while_lent(persistent):
    with persistent(max_size=2, **LEND):
        backend_pid()
        with connection.temporary_connection() as cursor:
            assert isinstance(backend_pid(cursor), int)
        assert not held()
        connection.ensure_connection()
        assert held()
        assert backend_pid() and not held()
        connection.close()  # lent: nothing borrowed for it; the idle ones are closed
        stats = default_stats()
        assert stats["in_use"] == 0 and stats["size"] == 0 and stats["borrows"] == 2
        assert backend_pid() and not held()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_child_forked_while_lent_uses_its_own_connection(persistent):
    from tests.backend.test_fork import in_child

    with persistent(max_size=2, **LEND):
        parent = backend_pid()
        assert not held()

        def child():
            mine = backend_pid()
            stats = default_stats()
            close_old_connections()
            connection.close()  # closes the child's idle connections, never the parent's
            return [mine, stats["opened"], stats["borrows"]]

        mine, opened, borrows = in_child(child)
        assert mine != parent and (opened, borrows) == (1, 0)
        assert backend_pid() == parent and not held()


# -- many threads, few connections ---------------------------------------------------------
THREADS = 16
ROUNDS = 25


def watch_checkouts(monkeypatch, store, lock, violations):
    """Check, around the store, that a connection is handed out only when no thread holds
    it and given back only by the thread that holds it."""
    holders = {}  # id(record) -> thread ident
    acquire, opened, checkin = store.acquire, store.opened, store.checkin

    def hand_out(record):
        with lock:
            if id(record) in holders:
                violations.append(("handed out while held", record.backend_pid))
            holders[id(record)] = threading.get_ident()

    def watched_acquire(slot=None, borrow=False, reserve=True):
        record = acquire(slot, borrow, reserve)
        if record is not None:
            hand_out(record)
        return record

    def watched_opened(record, in_use=True, connect_seconds=0.0, borrow=False):
        if in_use:
            hand_out(record)
        return opened(record, in_use, connect_seconds, borrow)

    def watched_checkin(record, lend=False):
        with lock:
            if holders.pop(id(record), None) != threading.get_ident():
                violations.append(("given back by another thread", record.backend_pid))
        return checkin(record, lend)

    monkeypatch.setattr(store, "acquire", watched_acquire)
    monkeypatch.setattr(store, "opened", watched_opened)
    monkeypatch.setattr(store, "checkin", watched_checkin)


def test_many_threads_on_few_connections_never_share_one(
    persistent, observer, own_application_name, monkeypatch
):
    busy = {}  # backend pid -> thread holding it in an atomic block
    busy_lock = threading.Lock()
    violations = []
    wrong = []
    barrier = threading.Barrier(THREADS)

    def worker(index):
        barrier.wait()
        cursor = connection.cursor()  # kept across lends: rebinds to what it borrows
        for n in range(ROUNDS):
            token = index * 1000 + n
            cursor.execute("SELECT %s::int, pg_backend_pid()", [token])
            if cursor.fetchone()[0] != token:
                wrong.append((index, n))
            with transaction.atomic():
                pid = backend_pid()
                with busy_lock:
                    if busy.get(pid) is not None:
                        violations.append((pid, busy[pid], index))
                    busy[pid] = index
                for _ in range(2):
                    if backend_pid() != pid:
                        violations.append((pid, "changed", index))
                with busy_lock:
                    busy[pid] = None
            close_old_connections()  # the end of one "request"
        cursor.close()

    errors = []

    def run(index):
        try:
            worker(index)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            close_old_connections()

    with persistent(max_size=3, checkout_timeout=60, **LEND):
        backend_pid()  # creates the store
        (store,) = registry.stores()
        watch_checkouts(monkeypatch, store, busy_lock, violations)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and wrong == [] and violations == []
        stats = default_stats()
        assert stats["in_use"] == 0 and stats["opened"] <= 3
        assert len(observer.backends(own_application_name)) == stats["size"] <= 3
        assert stats["lends"] >= THREADS * ROUNDS * 2  # each statement and each block
        assert not any(stats["reconnects"].values()) and stats["discards"] == {}
