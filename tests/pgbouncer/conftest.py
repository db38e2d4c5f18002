"""Fixtures of the PgBouncer tests: a SCRAM role in the test cluster, PgBouncers made by
the generator in front of the test database, and the site's environment through them."""

import secrets

import pytest

from tests.pgbouncer.harness import Bouncer

ROLE = "pgb_site"


@pytest.fixture(scope="session")
def site_role(pg_cluster, django_db_setup):
    """A login role with a SCRAM password that may read and write the test database.

    The test cluster trusts its clients, so PostgreSQL asks PgBouncer for no password; the
    site still proves its password to PgBouncer with SCRAM, against the role's secret.
    """
    if pg_cluster is None:
        pytest.skip("TEST_DATABASE_URL is set: these tests run PgBouncer before their own cluster")
    from django.db import connection

    db_name = connection.settings_dict["NAME"]
    password = secrets.token_hex(12)
    exists = pg_cluster.query("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE])
    verb = "ALTER" if exists else "CREATE"
    pg_cluster.query(f"{verb} ROLE {ROLE} LOGIN PASSWORD %s", [password])
    pg_cluster.query(f"GRANT pg_monitor TO {ROLE}")
    for sql in (
        f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}",
    ):
        pg_cluster.query(sql, dbname=db_name)
    return {"role": ROLE, "password": password, "db_name": db_name}


@pytest.fixture
def make_bouncer(pg_cluster, site_role):
    """Factory: ``make_bouncer(processes=2, threads=1, pool_size=None, ...)``, started."""
    started = []

    def make(**sizing):
        bouncer = Bouncer(
            pg_cluster, site_role["db_name"], {site_role["role"]: site_role["password"]}, **sizing
        )
        started.append(bouncer)
        return bouncer.start()

    yield make
    for bouncer in started:
        bouncer.destroy()


def bouncer_env(bouncer, **extra):
    """The site's settings through ``bouncer``: its URL, pgbouncer=True, the admin console."""
    return {
        "DATABASE_URL": bouncer.url(),
        "PERSISTENT_PGBOUNCER": "1",
        "PGBOUNCER_URL": bouncer.admin_url(),
        **extra,
    }


def backends(pg_cluster, db_name, role=ROLE):
    """PostgreSQL sessions of ``role`` in ``db_name``: PgBouncer's server connections."""
    return pg_cluster.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s"
        " AND backend_type = 'client backend'",
        [db_name, role],
    )[0][0]
