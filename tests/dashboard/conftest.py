"""Fixtures of the dashboard tests: a private metrics directory, users, held connections."""

import os
import threading
import uuid
from pathlib import Path

import psycopg2
import pytest

from dashboard import processes
from harness.waiting import wait_until

REPO_DIR = Path(__file__).resolve().parents[2]
OUTPUT_DIR = REPO_DIR / "var" / "test-output" / "dashboard"
PASSWORD = "dashboard-test-password-7"
MARKER = "dashtest-marker"
ADVISORY_KEY = 424242


@pytest.fixture
def output_dir():
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture
def make_user(django_user_model):
    def make(name, staff=False, superuser=False):
        return django_user_model.objects.create_user(
            name, password=PASSWORD, is_staff=staff or superuser, is_superuser=superuser
        )

    return make


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user("staff", staff=True))
    return client


@pytest.fixture
def superuser_client(client, make_user):
    client.force_login(make_user("root", superuser=True))
    return client


class HeldConnections:
    """Real connections to the test database that claim to be site processes."""

    def __init__(self, db_url):
        self.db_url = db_url
        self.conns = []
        self.threads = []

    def open(self, host, pid, autocommit=True):
        conn = psycopg2.connect(self.db_url, application_name=f"site:{host}:{pid}")
        conn.autocommit = autocommit
        self.conns.append(conn)
        return conn

    def idle(self, host, pid):
        conn = self.open(host, pid)
        conn.cursor().execute("SELECT 1")
        return conn

    def idle_in_transaction(self, host, pid):
        conn = self.open(host, pid, autocommit=False)
        conn.cursor().execute(f"SELECT 1 /* {MARKER} */")
        return conn

    def aborted(self, host, pid):
        conn = self.open(host, pid, autocommit=False)
        with pytest.raises(psycopg2.errors.DivisionByZero):
            conn.cursor().execute("SELECT 1/0")
        return conn

    def in_background(self, host, pid, sql):
        """A connection busy with ``sql`` in a thread (ended by cancel/close at the end)."""
        conn = self.open(host, pid)

        def run():
            try:
                conn.cursor().execute(sql)
            except psycopg2.Error:
                pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        return conn

    def close(self):
        for conn in self.conns:
            if not conn.closed:
                conn.cancel()
        for conn in self.conns:
            conn.close()
        for thread in self.threads:
            thread.join(timeout=10)


def backend_pid(conn):
    return conn.get_backend_pid()


@pytest.fixture
def held(test_db_url):
    connections = HeldConnections(test_db_url)
    yield connections
    connections.close()


@pytest.fixture
def known_connections(held, test_db_url):
    """Two fake web processes on a fake host, their connections in every state.

    Process 101: 2 idle, 1 idle in transaction, 1 active (pg_sleep).
    Process 102: 1 idle in transaction (aborted), 1 idle holding an advisory lock,
    1 active waiting for that lock. Plus one connection of a local pid that does not run.
    """
    host = f"dashtest-{uuid.uuid4().hex[:8]}"
    held.idle(host, 101)
    held.idle(host, 101)
    idle_tx = held.idle_in_transaction(host, 101)
    held.in_background(host, 101, f"SELECT pg_sleep(60) /* {MARKER} */")
    held.aborted(host, 102)
    holder = held.open(host, 102)
    holder.cursor().execute("SELECT pg_advisory_lock(%s)", [ADVISORY_KEY])
    waiter = held.in_background(host, 102, f"SELECT pg_advisory_lock({ADVISORY_KEY})")
    missing_pid = 99999999  # above any pid_max: never a running process
    orphan = held.idle(processes.HOST, missing_pid)
    check = psycopg2.connect(test_db_url)
    check.autocommit = True
    try:

        def settled():
            with check.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s"
                    " AND state = 'active'",
                    [f"site:{host}:%"],
                )
                return cur.fetchone()[0] == 2

        wait_until(settled, what="background queries running")
    finally:
        check.close()
    return {
        "host": host,
        "db_url": test_db_url,
        "idle_in_transaction": backend_pid(idle_tx),
        "holder": backend_pid(holder),
        "waiter": backend_pid(waiter),
        "orphan": (processes.HOST, missing_pid, backend_pid(orphan)),
    }


def direct_counts(db_url, host):
    """{(pid, state): count} for the fake host, straight from pg_stat_activity."""
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT application_name, state, count(*) FROM pg_stat_activity"
                " WHERE application_name LIKE %s GROUP BY 1, 2",
                [f"site:{host}:%"],
            )
            return {(int(app.rsplit(":", 1)[1]), state): n for app, state, n in cur.fetchall()}
    finally:
        conn.close()


def env_for_subprocess(site_env, metrics_dir):
    return {
        **os.environ,
        **site_env,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DASHBOARD_METRICS_DIR": str(metrics_dir),
        "PYTHONPATH": f"{REPO_DIR / 'site'}:{REPO_DIR}",
    }
