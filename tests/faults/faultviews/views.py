"""Views that misbehave on purpose, and views that report what a connection carries.

Dirty views (fault 6) leave something behind on their connection: an open or aborted
transaction, a session setting, a temporary table, a prepared statement, a session
advisory lock, a LISTEN. ``state/`` reports all of it for the connection that serves it,
so a test can prove that nothing reached the next request. ``sleep/`` holds a connection
busy on the server (fault 5); ``hold/`` holds a transaction open in Python (fault 7);
``pid/`` names the process and its backend.
"""

import json
import os
import time

from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse

import persistent_backend

# Comment tags in the SQL, so pg_stat_activity shows which view ran a statement.
HOLD_TAG = "/* faults:hold */"
SLEEP_TAG = "/* faults:sleep */"
ADVISORY_KEY = 7007
DIRTY_SETTING = "faults.marker"
DIRTY_TIMEOUT = "4321ms"
DIRTY_TIMEZONE = "Asia/Tokyo"
PREPARED = "faults_statement"


class DeliberateError(RuntimeError):
    """Raised by the dirty views: the 500 that follows is the point of the test."""


def _one(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _seconds(request, default, most=30.0):
    try:
        value = float(request.GET.get("seconds", default))
    except ValueError:
        value = default
    return min(max(value, 0.0), most)


def _backend_pid(cursor):
    cursor.execute("SELECT pg_backend_pid()")
    return cursor.fetchone()[0]


# -- identification, holding -------------------------------------------------------------
def pid(request):
    return JsonResponse(
        {
            "pid": os.getpid(),
            "backend_pid": _one("SELECT pg_backend_pid()")[0],
            "driver": connection.Database.__name__,
            "info": persistent_backend.current_connection_info(),
        }
    )


def process_stats(request):
    """This process's ``persistent_backend.stats()`` for the default database, after an
    optional pause in Python (``seconds``) so that parallel calls spread over the daemon
    processes."""
    time.sleep(_seconds(request, 0.0, most=1.0))
    stats = persistent_backend.stats()["default"]
    stats.pop("connections", None)
    return JsonResponse({"pid": os.getpid(), "stats": stats})


def sleep(request):
    """A slow query: the connection stays checked out for ``seconds`` (server side)."""
    seconds = _seconds(request, 5.0)
    backend_pid = _one(f"SELECT pg_backend_pid(), pg_sleep(%s) {SLEEP_TAG}", [seconds])[0]
    return JsonResponse({"pid": os.getpid(), "backend_pid": backend_pid, "slept": seconds})


def hold(request):
    """Open a transaction holding a lock, then wait in Python: the process is mid-request.

    The test finds this process through pg_stat_activity (``idle in transaction``, the
    HOLD_TAG query, application_name ``site:<host>:<pid>``) and kills it.
    """
    seconds = _seconds(request, 20.0, most=60.0)
    with transaction.atomic():
        backend_pid = _one(
            f"SELECT pg_backend_pid(), pg_advisory_xact_lock(%s) {HOLD_TAG}",
            [ADVISORY_KEY],
        )[0]
        time.sleep(seconds)
    return JsonResponse({"pid": os.getpid(), "backend_pid": backend_pid})


# -- dirty views (fault 6) ---------------------------------------------------------------
def tx_raise(request):
    """BEGIN by hand (autocommit mode), a write, then an exception: idle in transaction."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        backend_pid = _backend_pid(cursor)
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS faults_tx (x int) ON COMMIT DROP")
        cursor.execute("INSERT INTO faults_tx VALUES (1)")
    raise DeliberateError(f"raised inside an open transaction on backend {backend_pid}")


def tx_aborted(request):
    """A failed statement inside a hand-opened transaction: idle in transaction (aborted)."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute("SELECT 1/0")
        except Exception:
            pass
    raise DeliberateError("raised inside an aborted transaction")


def tx_return(request):
    """BEGIN by hand and return 200 without COMMIT: a leak that raises nothing."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        backend_pid = _backend_pid(cursor)
        cursor.execute("SELECT count(*) FROM catalog_item")
    return JsonResponse({"pid": os.getpid(), "backend_pid": backend_pid, "left_open": True})


def autocommit_off(request):
    """Django's own API: autocommit off, a query, then an exception."""
    transaction.set_autocommit(False)
    _one("SELECT count(*) FROM catalog_category")
    raise DeliberateError("raised with autocommit off")


def atomic_raise(request):
    """An exception inside transaction.atomic(): Django rolls back itself."""
    with transaction.atomic():
        _one("SELECT count(*) FROM catalog_category")
        raise DeliberateError("raised inside atomic()")


def set_session(request):
    """SET a custom setting, statement_timeout and the time zone; keep them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET {DIRTY_SETTING} = 'dirty'")
        cursor.execute(f"SET statement_timeout = '{DIRTY_TIMEOUT}'")
        cursor.execute(f"SET TIME ZONE '{DIRTY_TIMEZONE}'")
        backend_pid = _backend_pid(cursor)
    return JsonResponse({"pid": os.getpid(), "backend_pid": backend_pid})


def set_raise(request):
    """SET, then an exception."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET {DIRTY_SETTING} = 'dirty-raised'")
    raise DeliberateError("raised after SET")


def temp_and_prepare(request):
    """A temporary table, a prepared statement and a LISTEN, kept by the session."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS faults_temp (x int)")
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [PREPARED])
        if not cursor.fetchone()[0]:
            cursor.execute(f"PREPARE {PREPARED} AS SELECT 1")
        cursor.execute("LISTEN faults_channel")
        backend_pid = _backend_pid(cursor)
    return JsonResponse({"pid": os.getpid(), "backend_pid": backend_pid})


def lock(request):
    """A session advisory lock (pg_try_: never waits if another session holds it)."""
    backend_pid, got = _one("SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", [ADVISORY_KEY])
    return JsonResponse({"pid": os.getpid(), "backend_pid": backend_pid, "locked": got})


def lock_raise(request):
    """A session advisory lock, then an exception."""
    _one("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY])
    raise DeliberateError("raised holding a session advisory lock")


STATE_SQL = f"""
SELECT pg_backend_pid(),
       coalesce(current_setting('{DIRTY_SETTING}', true), ''),
       current_setting('statement_timeout'),
       current_setting('TimeZone'),
       (SELECT count(*) FROM pg_class
         WHERE relpersistence = 't' AND relnamespace = pg_my_temp_schema()),
       (SELECT count(*) FROM pg_prepared_statements WHERE name = '{PREPARED}'),
       (SELECT count(*) FROM pg_listening_channels()),
       (SELECT count(*) FROM pg_locks
         WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
       now() = statement_timestamp()
"""
STATE_KEYS = (
    "backend_pid",
    "marker",
    "statement_timeout",
    "timezone",
    "temp_tables",
    "prepared",
    "listening",
    "advisory_locks",
    "own_transaction",
)


def state(request):
    """What the serving connection carries. ``own_transaction``: the statement ran in a
    transaction of its own (a leaked open transaction would make now() older)."""
    row = _one(STATE_SQL)
    data = dict(zip(STATE_KEYS, row, strict=True))
    data["pid"] = os.getpid()
    data["autocommit"] = connection.get_autocommit()
    return HttpResponse(json.dumps(data), content_type="application/json")
