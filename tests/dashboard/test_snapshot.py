"""The snapshot against a real PostgreSQL holding known connections in several states."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import processes, snapshot
from tests.dashboard.conftest import direct_counts

pytestmark = pytest.mark.django_db(transaction=True)

API = "/dashboard/api/snapshot"


def by_key(snap):
    return {(p["host"], p["pid"]): p for p in snap["processes"]}


def test_per_process_counts_equal_pg_stat_activity(staff_client, known_connections):
    host = known_connections["host"]
    snap = staff_client.get(API).json()
    expected = direct_counts(known_connections["db_url"], host)
    assert expected == {
        (101, "idle"): 2,
        (101, "idle in transaction"): 1,
        (101, "active"): 1,
        (102, "idle in transaction (aborted)"): 1,
        (102, "idle"): 1,
        (102, "active"): 1,
    }
    procs = by_key(snap)
    got = {
        (pid, state): count
        for (h, pid), proc in procs.items()
        if h == host
        for state, count in proc["connections"]["states"].items()
        if count
    }
    assert got == expected
    first = procs[(host, 101)]
    assert first["connections"]["total"] == 4
    assert first["local"] is False and first["alive"] is None
    assert first["connections"]["longest_transaction_seconds"] is not None
    assert first["connections"]["longest_query_seconds"] is not None
    idle_tx = [c for c in first["connections"]["list"] if c["state"] == "idle in transaction"]
    assert [c["backend_pid"] for c in idle_tx] == [known_connections["idle_in_transaction"]]
    assert snap["database"]["states"]["idle in transaction"] >= 1
    assert snap["database"]["site_connections"] >= 8


def test_blocked_connection_names_its_blocker(staff_client, known_connections):
    snap = staff_client.get(API).json()
    second = by_key(snap)[(known_connections["host"], 102)]
    waiting = [c for c in second["connections"]["list"] if c["blocked_by"]]
    assert [c["backend_pid"] for c in waiting] == [known_connections["waiter"]]
    assert waiting[0]["blocked_by"] == [known_connections["holder"]]
    assert waiting[0]["wait_event"] == "Lock:advisory"
    assert second["connections"]["blocked"] == 1
    assert second["connections"]["wait_events"] == {"Lock:advisory": 1}
    assert any(w["code"] == "blocked" for w in snap["warnings"])


def test_one_query_and_own_session_left_out(known_connections):
    with CaptureQueriesContext(connection) as queries:
        snap = snapshot.build()
    assert len(queries) == 1
    assert "pg_stat_activity" in queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own = cursor.fetchone()[0]
    listed = [c["backend_pid"] for p in snap["processes"] for c in p["connections"]["list"]]
    assert own not in listed
    assert snap["database"]["dashboard_sessions"] == 1
    used = snap["database"]["used"]
    others = snap["database"]["other_connections"]
    assert used == snap["database"]["site_connections"] + others + 1


def test_budget_is_live_max_connections_minus_reserved(known_connections):
    snap = snapshot.build()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        budget = cursor.fetchone()[0]
    assert snap["database"]["budget"] == budget
    assert snap["database"]["used_ratio"] == pytest.approx(snap["database"]["used"] / budget)


def test_warnings(known_connections, settings):
    settings.DASHBOARD_IDLE_IN_TRANSACTION_WARN_SECONDS = 0
    settings.DASHBOARD_BUDGET_WARN_RATIO = 0.0
    snap = snapshot.build()
    codes = [w["code"] for w in snap["warnings"]]
    # One for the idle in transaction connection, one for the aborted one.
    assert codes.count("idle_in_transaction") >= 2
    assert "budget" in codes
    assert "orphaned_connections" in codes
    host, pid, _ = known_connections["orphan"]
    orphan = by_key(snap)[(host, pid)]
    assert orphan["local"] is True and orphan["alive"] is False
    settings.DASHBOARD_IDLE_IN_TRANSACTION_WARN_SECONDS = 30
    settings.DASHBOARD_BUDGET_WARN_RATIO = 0.8
    codes = [w["code"] for w in snapshot.build()["warnings"]]
    assert "idle_in_transaction" not in codes and "budget" not in codes


def test_this_process_is_listed_with_psutil_figures(staff_client):
    snap = staff_client.get(API).json()
    me = by_key(snap)[(processes.HOST, snap["served_by"]["pid"])]
    assert me["answering"] and me["alive"] and me["local"]
    assert me["rss_bytes"] > 0 and me["os_threads"] >= 1 and me["uptime_seconds"] > 0
    assert me["published_at"] is not None
    assert snap["deployment"]["server"] == "other"
    assert snap["deployment"]["engine"]


def test_prometheus_text_has_the_same_figures(known_connections, client, settings):
    settings.DASHBOARD_METRICS_TOKEN = "tok"
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer tok").text
    host = known_connections["host"]
    for line in [
        f'site_db_connections{{host="{host}",pid="101",state="idle"}} 2.0',
        f'site_db_connections{{host="{host}",pid="101",state="idle_in_transaction"}} 1.0',
        f'site_db_connections{{host="{host}",pid="102",state="idle_in_transaction_aborted"}} 1.0',
    ]:
        assert line in text
    for name in [
        "site_http_requests_total",
        'site_http_request_duration_seconds_bucket{le="0.005"}',
        "site_http_request_duration_seconds_count",
        "site_db_connection_budget",
        "site_process_resident_memory_bytes",
    ]:
        assert name in text
