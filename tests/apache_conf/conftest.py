"""Fixtures for apache_conf: a PostgreSQL with max_connections=20, the generator as a
subprocess, and work directories the daemon user (www-data) can read."""

import os
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.pgcluster import PgCluster
from harness.site import REPO_DIR, STOCK_ENGINE, run_manage, run_python

SMALL_MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def small_pg():
    """A throwaway cluster with max_connections=20 (nobody else connected)."""
    cluster = PgCluster(
        tempfile.mkdtemp(prefix="pgsmall-"), max_connections=SMALL_MAX_CONNECTIONS
    ).init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def run_generator(*args, module=None):
    """``python site/manage.py apache_conf ARGS`` (or ``python -m MODULE ARGS``).

    A string argument is split like a shell would (paths here have no spaces).
    """
    args = [word for arg in args for word in (shlex.split(arg) if isinstance(arg, str) else [arg])]
    if not module:
        return run_manage(["apache_conf", *args], generator_env(), cwd=REPO_DIR)
    return run_python(["-m", module, *args], generator_env(), cwd=REPO_DIR)


def generator_env():
    """The generators' settings: the test run's secret key and placeholder DATABASE_URL.

    The generator never uses Django's connection: Django's own backend keeps these runs
    independent of persistent_backend (manage.py imports the backend while setting up).
    """
    return {
        "DJANGO_DB_ENGINE": STOCK_ENGINE,
        "DJANGO_SECRET_KEY": os.environ["DJANGO_SECRET_KEY"],
        "DATABASE_URL": os.environ["DATABASE_URL"],
    }


@pytest.fixture
def generate():
    return run_generator


@pytest.fixture
def shared_dir():
    """A fresh directory under /tmp that www-data can traverse (tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="apache-conf-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_env_file(path, values):
    """A settings env file the daemon user can read (mode 644)."""
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o644)
    if os.geteuid() == 0:
        shutil.chown(path, "www-data", "www-data")
    return path
