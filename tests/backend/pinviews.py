"""Views for the pinning and retry acceptance tests (tests/backend/test_pinning.py).

Each view runs one kind of statement through Django's cursor, in a request served by
Django's WSGIHandler; ``/state-then-kill/<kind>/`` has an observer terminate the
request's own backend between two statements, as an operator or a restart would.
"""

from django.db import connection, transaction
from django.http import HttpResponse

import persistent_backend

# Statements that leave state on their session: the unit of work must be pinned.
SESSION_STATE = {
    "advisory_lock": ["SELECT pg_advisory_lock(4242)"],
    "set_role": ["SET ROLE pb_tenant"],
    "set_search_path": ["SET search_path TO pg_catalog, public"],
    "set_config": ["SELECT set_config('app.tenant', '7', false)"],
    "temp_table": ["CREATE TEMP TABLE pb_temp (x int)"],
    "listen": ["LISTEN pb_channel"],
    "prepare": ["PREPARE pb_statement AS SELECT 1"],
    "declare_with_hold": ["DECLARE pb_cursor CURSOR WITH HOLD FOR SELECT 1"],
    "unclassified": ["DO $$ BEGIN PERFORM set_config('app.tenant', '7', false); END $$"],
    "server_side_cursor": [],  # Django's chunked (named) cursor, see state_then_kill
    "pin_api": [],  # persistent_backend.pin(), then state the backend cannot see
    "none": ["SELECT 1"],  # control: no session state, so the next statement moves
}

# Statements the backend must never send twice. Each bumps the pb_runs sequence (not
# transactional: it counts every start) and, with ?sleep=, runs long enough to be killed.
RUN_ONCE = {
    "read": "SELECT nextval('pb_runs'){sleep}",
    "setval": "SELECT setval('pb_other', nextval('pb_runs')){sleep}",
    "advisory_lock": "SELECT nextval('pb_runs'), pg_advisory_lock(77){sleep}",
    "set_config": "SELECT nextval('pb_runs'), set_config('app.x', '1', false){sleep}",
    "pg_notify": "SELECT nextval('pb_runs'), pg_notify('pb_channel', 'x'){sleep}",
    "large_object": "SELECT nextval('pb_runs'), lo_create(0){sleep}",
    "user_function": "SELECT pb_side_effect(){sleep}",
    "select_into": "SELECT nextval('pb_runs') AS n{sleep_as} INTO pb_into",
    "multiple_statements": "SELECT nextval('pb_runs'); SELECT 1{sleep}",
    "nested_comment": "/* a /* nested */ comment */ SELECT nextval('pb_runs'){sleep}",
}


def backend_pid(cursor):
    cursor.execute("SELECT pg_backend_pid()")
    return cursor.fetchone()[0]


def kill(pid):
    from tests.backend.conftest import Observer

    Observer(dict(connection.settings_dict)).query("SELECT pg_terminate_backend(%s, 10000)", [pid])


def state_then_kill(request, kind):
    """Session state, then the server ends the session, then one more statement."""
    with connection.cursor() as cursor:
        pid = backend_pid(cursor)
        for sql in SESSION_STATE[kind]:
            cursor.execute(sql)
    if kind == "server_side_cursor":
        with connection.chunked_cursor() as named:
            named.execute("SELECT generate_series(1, 10)")
            named.fetchone()
    if kind == "pin_api":
        persistent_backend.pin()
        with connection.connection.cursor() as raw:  # invisible to the backend
            raw.execute("SELECT set_config('app.tenant', '7', false)")
    kill(pid)
    with connection.cursor() as cursor:
        after = backend_pid(cursor)  # must fail unless kind == "none"
    return HttpResponse(f"{pid} {after}")


def run_once(request, kind):
    """``?kill=before``: the server ends the session between two statements; otherwise
    the test kills the statement while it runs (``?sleep=30``)."""
    sleep = int(request.GET.get("sleep", 0))
    if request.GET.get("pin"):
        persistent_backend.pin()
    sql = RUN_ONCE[kind].format(
        sleep=f", pg_sleep({sleep})" if sleep else "",
        sleep_as=f", pg_sleep({sleep})::text AS s" if sleep else "",
    )
    with connection.cursor() as cursor:
        if request.GET.get("kill") == "before":
            kill(backend_pid(cursor))
        cursor.execute(sql)
    return HttpResponse("ran")


def atomic_sleep(request):
    """A write, then a long statement, in one transaction (the test kills it)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO catalog_category (name, slug) VALUES ('lost', 'lost')")
        cursor.execute("SELECT nextval('pb_runs'), pg_sleep(30)")
    return HttpResponse("committed")


def sleep(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(3)")
    return HttpResponse("slept")
