"""The session-state classifier (sessionstate.py): what pins, read the way PostgreSQL lexes."""

import pytest
from django.db import close_old_connections, connection

import persistent_backend
from persistent_backend.sessionstate import classify, scan

PINS = [
    ("SELECT pg_advisory_lock(1)", "advisory_lock", False),
    ("select PG_TRY_ADVISORY_LOCK_SHARED(1, 2)", "advisory_lock", False),
    ('SELECT "pg_advisory_lock"(1)', "advisory_lock", False),
    ("SET search_path TO tenant_7", "set", False),
    ("SET ROLE tenant", "set", False),
    ("SET SESSION AUTHORIZATION tenant", "set", False),
    ("RESET ROLE", "reset", False),
    ("SELECT set_config('app.tenant', %s, false)", "set_config", False),
    ("SELECT setseed(0.5)", "setseed", False),
    ("CREATE TEMP TABLE t (x int)", "temporary", False),
    ("create global temporary table t (x int)", "temporary", False),
    ("CREATE TABLE pg_temp.t (x int)", "temporary", False),
    ("SELECT 1 AS x INTO TEMP t", "temporary", False),
    ("PREPARE p AS SELECT 1", "prepare", False),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "declare", False),
    ("DISCARD ALL", "discard", False),
    ("LOCK TABLE t", "lock", False),
    ("LISTEN channel", "listen", True),
    ("LOAD 'auto_explain'", "load", True),
    ("SELECT dblink_connect('c', 'dbname=x')", "dblink", True),
    ("DO $$ BEGIN PERFORM 1; END $$", "unclassified", True),
    ("CALL do_things()", "unclassified", True),
    ("SELECT 1; SELECT 2", "unclassified: multiple statements", True),
    ("SELECT 1; -- trailing\n SET x = 1", "unclassified: multiple statements", True),
    ("/* outer /* nested */ still comment */ SELECT 1", "unclassified: nested comment", True),
    ("SELECT 'unterminated", "unclassified: unterminated", True),
    ("FROBNICATE everything", "unclassified: FROBNICATE", True),
]

NO_STATE = [
    "SELECT 1",
    "SELECT 1;",
    '  (SELECT "catalog_item"."id" FROM "catalog_item" WHERE "catalog_item"."id" = %s)',
    'INSERT INTO "catalog_category" ("name") VALUES (%s) RETURNING "id"',
    "UPDATE t SET x = 1",
    "SELECT 'SET x = 1; LISTEN y'",
    "SELECT E'it\\'s; SET x'",
    "SELECT $$; SET x = 1$$, $tag$ LISTEN $$ $tag$",
    "SELECT x FROM t -- ; SET x = 1",
    "/* SET x */ SELECT 1",
    "SELECT nextval('s')",  # currval()/lastval() on a new session fail loudly
    "SELECT pg_advisory_xact_lock(1)",
    "CREATE TABLE t (temp int)",
    "SELECT temp FROM weather",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ SELECT set_config('a', 'b', false) $$",
    "BEGIN",
    "SAVEPOINT s1",
    "",
    "-- only a comment",
]


@pytest.mark.no_db
@pytest.mark.parametrize("sql, reason, drop", PINS)
def test_statements_that_pin(sql, reason, drop):
    effect = classify(sql, in_transaction=False)
    assert (effect.reason, effect.drop) == (reason, drop)


@pytest.mark.no_db
@pytest.mark.parametrize("sql", NO_STATE)
def test_statements_that_do_not_pin(sql):
    assert classify(sql, in_transaction=False).reason is None


@pytest.mark.no_db
@pytest.mark.parametrize(
    "sql", ["SET LOCAL statement_timeout = 0", "SET TRANSACTION READ ONLY", "LOCK TABLE t"]
)
def test_transaction_scoped_commands_pin_only_outside_a_transaction(sql):
    assert classify(sql, in_transaction=True).reason is None
    assert classify(sql, in_transaction=False).reason is not None


@pytest.mark.no_db
def test_scan_blanks_literals_and_comments():
    text, problem = scan("SELECT 'a;b', \"Col;1\" /* c */ FROM t -- x")
    assert problem is None
    assert ";" not in text and "/*" not in text and "col_1" in text


def test_pin_api_and_its_context_manager(persistent):
    with persistent(mode="thread"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert persistent_backend.current_connection_info()["pinned"] is None
        with persistent_backend.pin() as wrapper:
            assert wrapper.alias == "default"
        assert persistent_backend.current_connection_info()["pinned"] == "pin()"
        close_old_connections()  # the end of the unit of work: reset, unpinned
        assert connection.persistent_pinned is None
        stats = persistent_backend.stats()["default"]
    assert stats["pinned"] == 1 and stats["pinned_resets"] == 1
    assert stats["pinned_by_reason"] == {"pin()": 1}
