"""Fixtures for the persistent_backend tests: in-process WSGI requests, options, observers.

Every test here talks to the real test cluster. Requests go through Django's real
``WSGIHandler`` (request_started / request_finished included), in this process, so the
tests can look at the backend's stores; the end-to-end tests use mod_wsgi-express.
"""

import json
import os
import wsgiref.util
from contextlib import contextmanager

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections

import persistent_backend
from harness import waiting
from harness.pgclient import SettingsClient
from persistent_backend import registry

TEST_URLCONF = "tests.backend.urls"


def pytest_configure(config):
    config.addinivalue_line("markers", "no_db: a persistent_backend test without the database")


def pytest_collection_modifyitems(config, items):
    """Everything here shares the database with other threads or processes: commit."""
    here = os.path.dirname(__file__)
    for item in items:
        if not str(item.fspath).startswith(here) or item.get_closest_marker("django_db"):
            continue
        if "no_db" in item.keywords or isinstance(item, pytest.Function) and _is_unittest(item):
            continue  # Django's own TestCase classes manage the database themselves
        item.add_marker(pytest.mark.django_db(transaction=True))


def _is_unittest(item):
    import unittest

    cls = getattr(item, "cls", None)
    return cls is not None and issubclass(cls, unittest.TestCase)


class InProcessSite:
    """Requests through Django's WSGIHandler, as a WSGI server would make them."""

    def __init__(self):
        self.handler = WSGIHandler()

    def request(self, path, query=""):
        environ = {
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": "GET",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
        }
        wsgiref.util.setup_testing_defaults(environ)
        status = []

        def start_response(value, headers, exc_info=None):
            status.append(int(value.split()[0]))

        result = self.handler(environ, start_response)
        try:
            body = b"".join(result).decode()
        finally:
            result.close()  # request_finished: the connection goes back to its store
        return status[0], body

    def get(self, path, query=""):
        status, body = self.request(path, query)
        assert status == 200, (path, status, body[:2000])
        return body

    def json(self, path, query=""):
        return json.loads(self.get(path, query))


@pytest.fixture
def site(settings):
    """In-process requests against the test views (tests/backend/urls.py)."""
    settings.ROOT_URLCONF = TEST_URLCONF
    return InProcessSite()


@pytest.fixture
def page_site():
    """In-process requests against the real site's pages."""
    return InProcessSite()


@contextmanager
def persistent_options(**options):
    """Run with ``OPTIONS["persistent"] = options`` on the default database, fresh stores."""
    settings_dict = connection.settings_dict
    previous = settings_dict["OPTIONS"].get("persistent")
    connection.close()
    registry.reset()
    settings_dict["OPTIONS"]["persistent"] = options
    try:
        yield
    finally:
        connection.close()
        registry.reset()
        if previous is None:
            settings_dict["OPTIONS"].pop("persistent", None)
        else:
            settings_dict["OPTIONS"]["persistent"] = previous


@pytest.fixture
def persistent():
    """``with persistent(mode="pool", max_size=2): ...``; always restores the settings."""
    return persistent_options


@pytest.fixture(autouse=True)
def _fresh_stores(request):
    """Each test starts and ends without kept connections (other threads' included)."""
    if "no_db" in request.keywords or _is_unittest(request.node):
        yield  # Django's TestCase holds its connection in an atomic block across tests
        return
    registry.reset()
    yield
    for alias in connections:
        connections[alias].close()
    registry.reset()


def default_stats():
    return persistent_backend.stats()["default"]


def wait_until(predicate, timeout=30, message="condition"):
    """Poll ``predicate`` until true; a guard against hanging, not a timing assertion."""
    return waiting.wait_until(predicate, timeout, 0.01, message)


class Observer(SettingsClient):
    """Plain psycopg2 superuser connections to the ``postgres`` database of the test server.

    Looks at the site's connections from outside: pg_stat_activity, pg_stat_statements.
    """

    def __init__(self, settings_dict):
        super().__init__(settings_dict, application_name="pytest-observer")
        self.dbname = settings_dict["NAME"]

    def backends(self, application_name=None):
        """(pid, application_name, state) of client sessions on the test database."""
        sql = (
            "SELECT pid, application_name, state FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend'"
        )
        params = [self.dbname]
        if application_name:
            sql += " AND application_name = %s"
            params.append(application_name)
        return self.query(sql + " ORDER BY pid", params)

    def by_application_name(self, prefix="site:"):
        rows = self.query(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE %s GROUP BY 1 ORDER BY 1",
            [self.dbname, prefix + "%"],
        )
        return dict(rows)

    def terminate(self, application_name_like="site:%"):
        """pg_terminate_backend() the site's sessions and wait until they are gone."""
        return self.query(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE %s AND pid <> pg_backend_pid()",
            [self.dbname, application_name_like],
        )

    def statements_enabled(self):
        # Queried from the postgres database, so the observer's own statements are not
        # counted with the test database's (the view is cluster-wide, filtered by dbid).
        self.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def reset_statements(self):
        self.query("SELECT pg_stat_statements_reset()")

    def statements(self):
        """(query, calls) run on the test database since the last reset."""
        return self.query(
            "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = %s ORDER BY calls DESC",
            [self.dbname],
        )


@pytest.fixture
def observer(django_db_setup):
    return Observer(dict(connection.settings_dict))


@pytest.fixture
def own_application_name():
    from persistent_backend.deployment import application_name

    return application_name("site", os.getpid())


@pytest.fixture
def scratch(observer):
    """The sequence that counts statement starts, and what the statements need."""
    observer.query(
        "DO $$ BEGIN CREATE ROLE pb_tenant; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    for sql in [
        "DROP TABLE IF EXISTS pb_into",
        "DROP SEQUENCE IF EXISTS pb_runs",
        "CREATE SEQUENCE pb_runs",
        "CREATE SEQUENCE IF NOT EXISTS pb_other",
        "CREATE OR REPLACE FUNCTION pb_side_effect() RETURNS bigint LANGUAGE sql "
        "AS $$ SELECT nextval('pb_runs') $$",
    ]:
        observer.query(sql, dbname=observer.dbname)
    return observer


def runs(observer):
    """How many times a RUN_ONCE statement started (the sequence is not transactional)."""
    ((value, called),) = observer.query(
        "SELECT last_value, is_called FROM pb_runs", dbname=observer.dbname
    )
    return value if called else 0
