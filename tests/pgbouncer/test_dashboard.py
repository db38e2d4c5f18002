"""The dashboard's PgBouncer side (PGBOUNCER_URL): SHOW POOLS / STATS / CLIENTS figures from
a real PgBouncer, grouped per host and process, and a clear field when it does not answer."""

import signal
import threading

import pytest
from django.test import Client
from django.test.utils import override_settings

from dashboard import pgbouncer
from harness.net import free_port
from tests.pgbouncer.harness import wait_until

API = "/dashboard/api/snapshot"


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("pgb-staff", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def snapshot(client):
    response = client.get(API)
    assert response.status_code == 200, response.content[:500]
    return response.json()


def test_without_pgbouncer_url_there_is_no_pgbouncer_section(staff):
    with override_settings(PGBOUNCER_URL=""):
        assert snapshot(staff)["pgbouncer"] is None
        assert b'id="pgbouncer" class="pgbouncer" hidden' in staff.get("/dashboard/").content


def test_an_unreachable_pgbouncer_is_a_field_and_a_warning_not_an_error(staff):
    url = f"postgres://site:secret@127.0.0.1:{free_port()}/pgbouncer"
    with override_settings(PGBOUNCER_URL=url):
        snap = snapshot(staff)
        page = staff.get("/dashboard/")
        metrics = staff.get("/metrics")
    bouncer = snap["pgbouncer"]
    assert bouncer["reachable"] is False and bouncer["totals"] is None
    assert "refused" in bouncer["error"] or "connect" in bouncer["error"]
    assert "secret" not in bouncer["address"]  # never the credentials
    codes = {w["code"]: w for w in snap["warnings"]}
    assert "pgbouncer_unreachable" in codes
    assert snap["database"]["used"] >= 1  # pg_stat_activity's side is still there
    assert page.status_code == 200 and b"PgBouncer does not answer" in page.content
    assert metrics.status_code == 200 and b"site_pgbouncer_up 0.0" in metrics.content


def test_pools_stats_and_clients_per_host(staff, make_bouncer):
    bouncer = make_bouncer(pool_size=1, reserve_pool_size=0)
    conns = []

    def client(host, pid):
        conn = bouncer.connect(application_name=f"site:{host}:{pid}")
        conns.append(conn)
        return conn

    try:
        holder = client("web1", 101)
        client("web1", 102).cursor().execute("SELECT 1")
        client("web2", 201).cursor().execute("SELECT 1")
        holder.autocommit = False
        holder.cursor().execute("SELECT 1")  # a transaction: the only server connection is taken
        waiter = client("web2", 202)
        blocked = threading.Thread(target=lambda: waiter.cursor().execute("SELECT 2"))
        blocked.start()
        with override_settings(PGBOUNCER_URL=bouncer.admin_url()):

            def waiting():
                snap = snapshot(staff)
                totals = snap["pgbouncer"]["totals"]
                return snap if totals and totals["clients_waiting"] == 1 else None

            snap = wait_until(waiting, timeout=20, what="a client waiting at PgBouncer")
            metrics = staff.get("/metrics").content.decode()
        holder.rollback()
        blocked.join(timeout=10)
        assert not blocked.is_alive()
    finally:
        for conn in conns:
            conn.close()
    b = snap["pgbouncer"]
    assert b["reachable"] and b["version"].startswith("PgBouncer")
    assert b["address"] == f"127.0.0.1:{bouncer.port}/pgbouncer"
    [pool] = [p for p in b["pools"] if p["database"] == bouncer.db_name]
    assert pool["pool_mode"] == "transaction"
    assert (pool["clients_active"], pool["clients_waiting"], pool["servers_active"]) == (3, 1, 1)
    assert b["totals"]["clients"] == 4 and b["totals"]["servers"] == 1
    hosts = {h["host"]: h for h in b["hosts"]}
    assert set(hosts) == {"web1", "web2"}
    assert (hosts["web1"]["processes"], hosts["web1"]["clients"]) == (2, 2)
    assert hosts["web2"]["waiting"] == 1
    assert {p["pid"] for p in hosts["web2"]["by_process"]} == {201, 202}
    assert [s for s in b["stats"] if s["database"] == bouncer.db_name]
    assert "site_pgbouncer_up 1.0" in metrics
    assert 'site_pgbouncer_host_clients{host="web1"} 2.0' in metrics


def test_site_owner_ignores_application_name_add_host():
    assert pgbouncer.site_owner("site:web1:42 - 10.0.0.5:51234", "site") == ("web1", 42)
    assert pgbouncer.site_owner("psql", "site") is None


def test_the_admin_connection_is_reopened_after_pgbouncer_restarts(make_bouncer):
    bouncer = make_bouncer(pool_size=1)
    with override_settings(PGBOUNCER_URL=bouncer.admin_url()):
        assert pgbouncer.snapshot()["reachable"]
        bouncer.stop()
        down = pgbouncer.snapshot()
        bouncer.start()
        up = pgbouncer.snapshot()
    assert not down["reachable"] and down["error"]
    assert up["reachable"], up["error"]


def test_a_silent_pgbouncer_cannot_hang_the_dashboard(make_bouncer):
    """A PgBouncer that accepts but never answers (SIGSTOP) is reported, not waited for."""
    bouncer = make_bouncer(pool_size=1)
    with override_settings(PGBOUNCER_URL=bouncer.admin_url()):
        assert pgbouncer.snapshot()["reachable"]
        bouncer.proc.send_signal(signal.SIGSTOP)
        try:
            kept = pgbouncer.snapshot()  # on the kept connection
            fresh = pgbouncer.snapshot()  # on a new one: the connect itself gets no answer
        finally:
            bouncer.proc.send_signal(signal.SIGCONT)
        back = pgbouncer.snapshot()
    for silent in (kept, fresh):
        assert not silent["reachable"] and "no answer from PgBouncer" in silent["error"]
    assert back["reachable"], back["error"]
