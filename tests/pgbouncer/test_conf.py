"""pgbouncer_conf: the committed reference, the budget arithmetic, and the generated ini run
by the real PgBouncer in front of a PostgreSQL that asks for SCRAM (as in production)."""

import io
import secrets
import tempfile
from dataclasses import replace

import psycopg2
import pytest

from apache_conf import pgbouncer, render
from apache_conf.sizing import Budget, Machine, Shape, SizingError
from harness.pgcluster import PgCluster
from tests.pgbouncer.harness import Bouncer, run_generator

MACHINE = Machine(cores=4, memory_bytes=8 * 1024**3)


# --- the committed reference -----------------------------------------------------------------
def test_generated_pgbouncer_files_match_the_generator():
    for name, text in pgbouncer.reference_outputs().items():
        assert (render.GENERATED_DIR / name).read_text() == text, (
            f"apache_conf/generated/{name} drifted: run {pgbouncer.REFERENCE_COMMAND}"
        )


def test_reference_command_writes_the_same_files(tmp_path):
    result = run_generator("--reference", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    for name in (pgbouncer.INI, pgbouncer.USERLIST):
        assert (tmp_path / name).read_text() == (render.GENERATED_DIR / name).read_text()
    refused = run_generator("--reference", "--pool-size", 3, "--out", tmp_path)
    assert refused.returncode == 2 and "drop --pool-size" in refused.stderr


def test_the_userlist_template_holds_no_secret():
    text = (render.GENERATED_DIR / pgbouncer.USERLIST).read_text()
    assert pgbouncer.is_template(text)  # every line a ';' comment: PgBouncer reads no entry
    assert "pg_authid" in text and "SCRAM-SHA-256$4096:<salt>" in text


# --- the arithmetic --------------------------------------------------------------------------
def test_reference_arithmetic():
    plan = pgbouncer.reference_plan()
    assert (plan.shape.processes, plan.shape.threads, plan.hosts) == (4, 1, 3)
    assert plan.clients == 12 and plan.in_flight == 12
    assert plan.pool_size == 8  # min(12 in flight, 2 x 4 cores)
    assert plan.reserve_pool_size == 2 and plan.servers == 10
    assert plan.max_client_conn == 2 * (12 + 12) + 10
    ini = (render.GENERATED_DIR / pgbouncer.INI).read_text()
    for line in [
        "pool_mode = transaction",
        "default_pool_size = 8",
        "reserve_pool_size = 2",
        "max_db_connections = 10",
        "max_client_conn = 58",
        "server_lifetime = 1800",
        "server_idle_timeout = 300",
        "query_wait_timeout = 5",
        "server_reset_query = DISCARD ALL",
        "server_reset_query_always = 0",
        "server_check_query = select 1",
        "application_name_add_host = 0",
        "auth_type = scram-sha-256",
        "stats_users = site",
    ]:
        assert f"\n{line}\n" in ini, line
    assert "\ntrack_extra_parameters" not in ini  # unknown to PgBouncer 1.18: it would not start


def test_many_hosts_fit_through_pgbouncer_where_direct_connections_do_not():
    """20 hybrid hosts need 160 PostgreSQL connections directly; through PgBouncer, 10."""
    budget = Budget(max_connections=100)
    shape = Shape("hybrid", 2, 4)
    plan = pgbouncer.size(shape, MACHINE, budget, hosts=20)
    assert plan.direct_needed == 160 > budget.usable == 95
    assert (plan.clients, plan.pool_size, plan.servers) == (160, 8, 10)
    assert any("over budget" in line for line in plan.budget_lines())


def test_the_pool_shrinks_to_the_budget_and_explicit_sizes_are_refused():
    small = Budget(max_connections=10)  # 10 - 3 - 2 = 5 usable
    plan = pgbouncer.size(Shape("prefork", 4, 1), MACHINE, small, hosts=3)
    assert (plan.pool_size, plan.reserve_pool_size) == (5, 0)
    assert plan.notes and "sized down" in plan.notes[0]
    with pytest.raises(SizingError, match="only 5 are usable") as refused:
        pgbouncer.size(Shape("prefork", 4, 1), MACHINE, small, pool_size=6)
    assert "--pool-size 5" in refused.value.details[-1]
    forced = pgbouncer.size(Shape("prefork", 4, 1), MACHINE, small, pool_size=6, force=True)
    assert "--force" in forced.notes[-1]


def test_lifetimes_follow_persistent_backend():
    lifetimes = pgbouncer.Lifetimes(max_age=600, idle_timeout=None, checkout_timeout=3)
    assert lifetimes.server_lifetime == 600
    assert lifetimes.server_idle_timeout == 0  # never, as idle_timeout None
    assert (lifetimes.query_wait_timeout, lifetimes.reserve_pool_timeout) == (3, "1.5")
    assert replace(lifetimes, max_age=None).server_lifetime == pgbouncer.PGBOUNCER_DEFAULT_LIFETIME


def test_a_userlist_with_entries_is_never_overwritten(tmp_path):
    real = tmp_path / pgbouncer.USERLIST
    real.write_text('"site" "SCRAM-SHA-256$4096:abc$def:ghi"\n')
    out = io.StringIO()
    files = pgbouncer.reference_outputs()
    written = pgbouncer.write(files, tmp_path, out)
    assert [p.name for p in written] == [pgbouncer.INI]
    assert real.read_text().startswith('"site"') and "kept" in out.getvalue()


# --- the generated ini, run by PgBouncer -----------------------------------------------------
@pytest.fixture(scope="module")
def scram_cluster():
    """A cluster where every connection, PgBouncer's included, must prove a SCRAM password."""
    cluster = PgCluster(tempfile.mkdtemp(prefix="pgb-scram-"), password=secrets.token_hex(8))
    cluster.init().start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_the_generated_ini_starts_pgbouncer_with_scram_both_ways(scram_cluster):
    password = secrets.token_hex(8)
    scram_cluster.query("CREATE ROLE site LOGIN PASSWORD %s", [password])
    scram_cluster.query("CREATE DATABASE site OWNER site")
    bouncer = Bouncer(scram_cluster, "site", {"site": password}, processes=2, threads=1, hosts=3)
    try:
        result = bouncer.generate()
        assert "onto at most" in result.stdout, result.stdout
        assert bouncer.setting("pool_mode") == "transaction"
        assert bouncer.setting("default_pool_size") == "4"  # min(3 x 2 in flight, 2 x cores)
        bouncer.start()
        conn = bouncer.connect(application_name="site:web1:4242")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user, current_setting('application_name')")
                assert cur.fetchone() == ("site", "site:web1:4242")
        finally:
            conn.close()
        pool = bouncer.pool()
        assert pool["pool_mode"] == "transaction"
        config = {row["key"]: row["value"] for row in bouncer.show("CONFIG")}
        assert config["default_pool_size"] == "4" and config["auth_type"] == "scram-sha-256"
        # A wrong password is refused by PgBouncer itself.
        with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
            psycopg2.connect(bouncer.url().replace(password, "wrong"), connect_timeout=5)
    finally:
        bouncer.destroy()
