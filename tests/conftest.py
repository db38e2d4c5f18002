"""Session fixtures: a throwaway PostgreSQL cluster, demo data, and the site under mod_wsgi.

The cluster starts on a free port for the test session and is deleted at the end,
unless ``TEST_DATABASE_URL`` names a server to use instead (then the tests that must
stop or restart the server are skipped, since they cannot control it).
"""

import os
import shutil
import tempfile
from pathlib import Path

import dj_database_url
import pytest
from django.test.utils import override_settings

from dashboard import metrics
from harness.modwsgi import ModWsgiServer
from harness.pgcluster import PgCluster
from harness.site import site_environment


@pytest.fixture(scope="session", autouse=True)
def dashboard_metrics_dir():
    """The test process publishes its dashboard metrics into a directory of its own.

    Never the repo's var/metrics: a running site would count the test's requests.
    """
    path = tempfile.mkdtemp(prefix="dashboard-metrics-")
    override = override_settings(DASHBOARD_METRICS_DIR=path, DASHBOARD_PUBLISH_INTERVAL=1)
    override.enable()
    yield Path(path)
    metrics.publisher.stop()
    override.disable()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """The throwaway cluster (None when TEST_DATABASE_URL is used)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    cluster = PgCluster(tempfile.mkdtemp(prefix="pgtest-")).init().start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def controllable_cluster(pg_cluster):
    """The cluster for tests that stop or restart the server; always started again after."""
    if pg_cluster is None:
        pytest.skip("TEST_DATABASE_URL is set: this test must stop/restart its own server")
    yield pg_cluster
    if not pg_cluster.is_running():
        pg_cluster.start()
    pg_cluster.wait_ready()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pg_cluster):
    from django.conf import settings

    db = settings.DATABASES["default"]
    if pg_cluster is None:
        target = dj_database_url.parse(os.environ["TEST_DATABASE_URL"])
        for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):
            db[key] = target[key]
    else:
        db.update(
            NAME="site",
            USER=pg_cluster.superuser,
            PASSWORD="",
            HOST=pg_cluster.host,
            PORT=str(pg_cluster.port),
        )


@pytest.fixture
def demo_data(django_db_setup, django_db_blocker):
    """Committed demo rows in the test database, visible to other processes (the server).

    Idempotent: TransactionTestCase-style tests flush the database, so reload if needed.
    """
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("load_demo_data", items=300, verbosity=0)


@pytest.fixture(scope="session")
def test_db_url(django_db_setup):
    """URL of the test database that pytest-django created (for subprocesses)."""
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def site_env(test_db_url):
    """Environment for a site process: the test database, production-like settings."""
    return site_environment(test_db_url, os.environ["DJANGO_SECRET_KEY"])


@pytest.fixture
def live_site(site_env, demo_data):
    """Factory: ``live_site(processes=2, threads=1, **env)`` starts mod_wsgi-express.

    Its server root lives in a fresh directory under /tmp that the daemon user can read
    (pytest's own tmp_path is private to root).
    """
    servers = []

    def start(processes=2, threads=1, **env):
        work = tempfile.mkdtemp(prefix="site-e2e-")
        server = ModWsgiServer(
            work,
            {**site_env, "DJANGO_VAR_DIR": work + "/var", **env},
            processes=processes,
            threads=threads,
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
        shutil.rmtree(server.work_dir, ignore_errors=True)


def pytest_addoption(parser):
    """``--long`` belongs to the fault suite (tests/faults), registered here so that
    ``pytest tests --long`` works too."""
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="fault suite: run the long variants of every fault (instead of the short "
        "ones) and print the table of figures (./deploy.sh faults)",
    )


def pytest_collection_modifyitems(config, items):
    """Tests that share the database with other processes get committed data.

    Everything that starts Apache daemons carries the ``apache`` marker, and every test
    using a server process or the test database URL is a transactional test (no
    wrapping transaction, so what it writes is visible to the server; flushed after).
    """
    shared = {"live_site", "test_db_url", "demo_data"}
    # A test marked for the other driver is deselected, never skipped: ./deploy.sh test
    # runs the psycopg3-marked ones in a second pass with DJANGO_PSYCOPG=3.
    other = "psycopg2" if os.environ.get("DJANGO_PSYCOPG") == "3" else "psycopg3"
    deselected = [item for item in items if item.get_closest_marker(other)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(other)]
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "live_site" in names:
            item.add_marker(pytest.mark.apache)
        if names & shared and not item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.django_db(transaction=True))
