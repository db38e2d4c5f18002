"""The fault suite: ``--long``, the site under mod_wsgi-express with the test-only views,
PostgreSQL seen from outside, and the table of figures printed at the end.

Without ``--long`` a short version of every fault (1-7) runs, with the bad-input (8)
and security (9) checks; with ``--long`` (``./deploy.sh faults``) the long variants of
every fault run instead of the short ones, and the table of figures is printed and written
to ``var/test-output/faults/faults.md``.
"""

import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.modwsgi import ModWsgiServer, get
from harness.waiting import wait_until
from tests.faults import harness

REPO_DIR = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUTPUT_DIR = REPO_DIR / "var" / "test-output" / "faults"
ROWS = []  # harness.Row, in the order the tests ran
ENVIRONMENT = {}  # what the figures were measured on (filled in as the tests run)


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a long fault variant (runs only with --long)")
    config.addinivalue_line(
        "markers", "short: the normal-suite version of a fault (replaced by the long one)"
    )


def long_run(config):
    return bool(config.getoption("--long", default=False))


def pytest_collection_modifyitems(config, items):
    """Deselect long variants without ``--long`` and short ones with it; mark Apache tests."""
    keep, drop = [], []
    long = long_run(config)
    for item in items:
        if not str(item.fspath).startswith(str(HERE)):
            keep.append(item)
            continue
        if {"fault_site", "bad_input_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.apache)
        if item.get_closest_marker("long") and not long:
            drop.append(item)
        elif item.get_closest_marker("short") and long:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- the site ----------------------------------------------------------------------------


@pytest.fixture
def fault_site(site_env, demo_data):
    """Factory: ``fault_site("prefork" | "threaded", warm_up=True, **env)``: mod_wsgi-express.

    The site runs with the fault suite's settings, ``tests.faults.faultviews.settings``
    (the /_faults/ views and the X-Fault-Pid header), and the repository on its Python
    path so the daemons can import them. The server gets ``.variant``.
    """
    servers = []

    def start(variant, warm_up=True, **env):
        variant = harness.VARIANTS[variant] if isinstance(variant, str) else variant
        work = tempfile.mkdtemp(prefix="site-faults-")
        server = ModWsgiServer(
            work,
            {
                **site_env,
                "DJANGO_VAR_DIR": work + "/var",
                "DJANGO_SETTINGS_MODULE": "tests.faults.faultviews.settings",
                "PERSISTENT_MODE": variant.mode,
                **{key: str(value) for key, value in env.items()},
            },
            processes=variant.processes,
            threads=variant.threads,
            extra_args=["--python-path", str(REPO_DIR)],
        )
        server.variant = variant
        servers.append(server)
        server.start()
        if warm_up:
            warm(server)
        return server

    yield start
    for server in servers:
        server.stop()
        shutil.rmtree(server.work_dir, ignore_errors=True)


def warm(server, timeout=60):
    """Until every daemon process has answered a database page once (imports, connection)."""
    seen = set()

    def answered():
        status, body, headers = get(server.url + "/_faults/pid/")
        assert status == 200, (status, body[:1000], server.logs())
        seen.add(int(headers["X-Fault-Pid"]))
        return len(seen) >= server.variant.processes

    wait_until(answered, timeout, 0, f"an answer from every process ({server.logs()})")
    return seen


@pytest.fixture
def item_ids(demo_data, django_db_blocker):
    from catalog.models import Item

    with django_db_blocker.unblock():
        return list(Item.objects.order_by("id").values_list("id", flat=True)[:50])


@pytest.fixture
def pages(item_ids):
    return harness.page_paths(item_ids)


@pytest.fixture
def site_db(django_db_setup):
    from django.db import connection

    database = harness.SiteDatabase(dict(connection.settings_dict))
    if "postgres" not in ENVIRONMENT:
        ENVIRONMENT["postgres"] = database.query("SHOW server_version")[0][0].split()[0]
    return database


def environment_line():
    import platform

    import django
    from django.db import connection

    driver = connection.Database
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, Django "
        f"{django.get_version()}, {driver.__name__} {driver.__version__.split()[0]}, "
        f"PostgreSQL {ENVIRONMENT.get('postgres', '?')}, "
        f"mod_wsgi {importlib.metadata.version('mod_wsgi')}"
    )


@pytest.fixture
def cluster(controllable_cluster):
    """The test cluster, to stop and start; the test process's own kept connection (which
    a restart killed) is closed before pytest-django flushes the database with it."""
    yield controllable_cluster
    from django.db import connections

    connections.close_all()


# -- figures -------------------------------------------------------------------------------


@pytest.fixture
def figures():
    """``figures(row)``: add a ``harness.Row`` to the table printed at the end."""

    def record(row):
        ROWS.append(row)
        return row

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not ROWS:
        return
    rows = sorted(ROWS, key=lambda row: row.fault)  # stable: variants keep their run order
    title = "fault figures" + (" (long variants)" if long_run(config) else " (short versions)")
    terminalreporter.section(title)
    terminalreporter.write_line(environment_line())
    terminalreporter.write_line(harness.text_table(rows))
    if long_run(config):
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        path = OUTPUT_DIR / "faults.md"
        path.write_text(
            "# Fault suite figures (`./deploy.sh faults`)\n\n"
            + environment_line()
            + "\n\n"
            + harness.markdown_table(rows)
            + "\n\nCommand: `./deploy.sh faults`. `recovery`: see docs/reliability.md for what "
            "each figure measures.\n"
        )
        terminalreporter.write_line(f"written to {path.relative_to(REPO_DIR)}")
