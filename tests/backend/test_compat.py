"""Point 10: behaves like Django's own PostgreSQL backend (both drivers).

Run twice: ``pytest tests/backend`` (psycopg2) and ``DJANGO_PSYCOPG=3 pytest tests/backend``.
"""

import os
from pathlib import Path

import pytest
from django.db import close_old_connections, connection, transaction
from django.test import TestCase, TransactionTestCase

from catalog.models import Category
from harness.site import run_manage
from tests.backend.conftest import default_stats

SITE_DIR = Path(__file__).resolve().parents[2] / "site"


def test_driver_is_the_one_asked_for():
    connection.ensure_connection()
    module = type(connection.connection).__module__.split(".")[0]
    wanted = "psycopg" if os.environ.get("DJANGO_PSYCOPG") == "3" else "psycopg2"
    assert module == wanted
    assert connection.vendor == "postgresql"


def test_atomic_savepoints_and_on_commit(persistent):
    ran = []
    with persistent(mode="process"):
        with transaction.atomic():
            Category.objects.create(name="outer", slug="outer")
            try:
                with transaction.atomic():
                    Category.objects.create(name="inner", slug="inner")
                    raise ValueError
            except ValueError:
                pass
            transaction.on_commit(lambda: ran.append("committed"))
            # A request boundary inside an atomic block does not return the connection.
            close_old_connections()
            assert connection.in_atomic_block and connection.connection is not None
            Category.objects.create(name="after", slug="after")
        close_old_connections()  # now it goes back, clean
        assert connection.connection is None
        names = sorted(Category.objects.values_list("name", flat=True))
        stats = default_stats()
    assert names == ["after", "outer"]
    assert ran == ["committed"]
    assert stats["leaked_transactions"] == 0 and stats["opened"] == 1


def test_atomic_requests(site, persistent, observer):
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        with persistent(mode="pool"):
            site.get("/create/", "name=kept")
            assert site.request("/create/", "name=undone&fail=1")[0] == 500
            site.get("/create/", "name=kept-too")
            stats = default_stats()
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False
    names = observer.query("SELECT name FROM catalog_category ORDER BY id", dbname=observer.dbname)
    assert [n for (n,) in names] == ["kept", "kept-too"]
    assert stats["leaked_transactions"] == 0 and stats["opened"] == 1


def test_server_side_cursors_across_requests(site, persistent):
    Category.objects.bulk_create(Category(name=f"c{i}", slug=f"c{i}") for i in range(7))
    with persistent(mode="process"):
        for _ in range(3):
            assert site.get("/iterate/") == ",".join(f"c{i}" for i in range(7))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_cursors")
            assert cursor.fetchone()[0] == 0  # no WITH HOLD cursor left behind
        with transaction.atomic():
            names = [c.name for c in Category.objects.order_by("id").iterator(chunk_size=3)]
        assert names == [f"c{i}" for i in range(7)]
        assert default_stats()["opened"] == 1


def test_migrations_forward_and_back(observer):
    """migrate, migrate to zero and back, in a scratch database, in a fresh interpreter."""
    name = f"pb_migrate_{os.getpid()}"
    observer.query(f'DROP DATABASE IF EXISTS "{name}"')
    observer.query(f'CREATE DATABASE "{name}"')
    s = observer.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    env = {
        "DJANGO_SECRET_KEY": "migrate-test-" + "x" * 40,
        "DATABASE_URL": f"postgres://{auth}@{s['HOST']}:{s['PORT']}/{name}",
    }

    def manage(*args):
        result = run_manage(args, env, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    try:
        manage("migrate", "--no-input")
        manage("migrate", "catalog", "zero", "--no-input")
        manage("migrate", "--no-input")
        assert "[X] 0001_initial" in manage("showmigrations", "catalog")
        tables = observer.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'catalog_%%'",
            dbname=name,
        )
        assert tables[0][0] >= 4
    finally:
        observer.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class StockTestCaseTests(TestCase):
    """Django's TestCase (a transaction per test, rolled back) works unchanged."""

    @classmethod
    def setUpTestData(cls):
        cls.category = Category.objects.create(name="fixture", slug="fixture")

    def test_queries_and_client(self):
        with self.assertNumQueries(1):
            self.assertEqual(Category.objects.get().name, "fixture")
        response = self.client.get("/nodb/")
        self.assertEqual(response.status_code, 200)
        close_old_connections()  # inside the test's atomic block: nothing is returned
        self.assertTrue(connection.in_atomic_block)
        self.assertEqual(Category.objects.count(), 1)

    def test_isolated_from_the_other_test(self):
        Category.objects.create(name="second", slug="second")
        self.assertEqual(Category.objects.count(), 2)


class StockTransactionTestCaseTests(TransactionTestCase):
    def test_commits_are_real(self):
        Category.objects.create(name="committed", slug="committed")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM catalog_category")
            self.assertEqual(cursor.fetchone()[0], 1)
        self.assertFalse(connection.in_atomic_block)


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_is_usable_answers_without_a_round_trip(persistent, observer):
    """Django's is_usable() sends SELECT 1; this one reads libpq's state and the socket."""
    from django.db import DataError

    with persistent(mode="thread"):
        connection.ensure_connection()
        assert connection.is_usable()
        with transaction.atomic():
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1/0")
            except DataError:
                pass
            assert not connection.is_usable()  # aborted transaction, like Django's answer
            transaction.set_rollback(True)
        assert connection.is_usable()
        backend = connection.connection.info.backend_pid
        observer.query("SELECT pg_terminate_backend(%s, 10000)", [backend])
        assert not connection.is_usable()
