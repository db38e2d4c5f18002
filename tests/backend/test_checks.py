"""Point 12: Django system checks (``manage.py check``)."""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from harness.site import run_manage
from persistent_backend import checks
from persistent_backend.environment import ServerShape

SITE_DIR = Path(__file__).resolve().parents[2] / "site"


def ids(messages):
    return [m.id for m in messages]


def db(**overrides):
    persistent = overrides.pop("persistent", {})
    return {"CONN_MAX_AGE": 0, "OPTIONS": {"persistent": persistent}, **overrides}


@pytest.mark.no_db
def test_conn_max_age_is_a_warning():
    assert ids(checks.settings_messages("default", db(CONN_MAX_AGE=60))) == [
        "persistent_backend.W001"
    ]
    assert ids(checks.settings_messages("default", db(CONN_MAX_AGE=None))) == [
        "persistent_backend.W001"
    ]
    assert checks.settings_messages("default", db(), ServerShape("other")) == []


@pytest.mark.no_db
@pytest.mark.parametrize(
    "shape, expected",
    [
        (ServerShape("mod_wsgi", 2, 1), []),
        (ServerShape("mod_wsgi", 1, 8), ["persistent_backend.E002"]),
        (ServerShape("runserver", 1, None), ["persistent_backend.E002"]),
        (ServerShape("runserver", 1, 1), []),
        (ServerShape("other", 4, 2), ["persistent_backend.E002"]),
        (ServerShape("asgi"), ["persistent_backend.E002"]),
    ],
)
def test_process_mode_in_a_threaded_server_is_an_error(shape, expected):
    messages = checks.settings_messages("default", db(persistent={"mode": "process"}), shape)
    assert ids(messages) == expected
    # auto never picks process mode for a threaded server.
    assert checks.settings_messages("default", db(), shape) == []


@pytest.mark.no_db
def test_invalid_options_and_django_pool_are_errors():
    bad = checks.settings_messages("default", db(persistent={"mode": "nope"}))
    assert ids(bad) == ["persistent_backend.E001"] and "mode" in bad[0].msg
    pooled = db()
    pooled["OPTIONS"]["pool"] = True
    assert "persistent_backend.E003" in ids(checks.settings_messages("default", pooled))


@pytest.mark.no_db
@pytest.mark.parametrize(
    "persistent, shape, warns",
    [
        ({"mode": "pool", "max_size": 10}, ServerShape("mod_wsgi", 9, 10), False),  # 90 <= 97
        ({"mode": "pool", "max_size": 10}, ServerShape("mod_wsgi", 10, 10), True),  # 100 > 97
        ({}, ServerShape("mod_wsgi", 98, 1), True),  # auto: process mode, 98 x 1
        ({"mode": "thread"}, ServerShape("other", 2, 60), True),  # 120 > 97
        ({"mode": "thread"}, ServerShape("other"), False),  # unknown shape: no verdict
    ],
)
def test_connection_budget(persistent, shape, warns):
    from persistent_backend.options import Options

    options = Options.from_settings(db(persistent=persistent))
    messages = checks.budget_messages("default", options, shape, (100, 3, 0))
    assert ids(messages) == (["persistent_backend.W002"] if warns else [])


def test_budget_check_reads_the_real_server(persistent):
    """The database-tagged check asks the server for max_connections (100 in the test cluster)."""
    assert settings.DATABASES["default"] is connection.settings_dict
    with persistent(mode="pool", max_size=10, processes=20):
        messages = checks.check_connection_budget(databases=["default"])
    assert ids(messages) == ["persistent_backend.W002"]
    assert "20 process(es) x 10 connection(s) = 200" in messages[0].msg
    with persistent(mode="pool", max_size=10, processes=2):
        assert checks.check_connection_budget(databases=["default"]) == []


def manage_check(test_db_url, *args, **env):
    env = {"DJANGO_SECRET_KEY": "check-test-" + "x" * 40, "DATABASE_URL": test_db_url, **env}
    return run_manage(["check", *args], env)


def test_manage_py_check_runs_the_checks(test_db_url):
    clean = manage_check(test_db_url, "--database", "default")
    assert clean.returncode == 0, clean.stderr
    assert "persistent_backend." not in clean.stdout + clean.stderr

    warned = manage_check(test_db_url, DJANGO_CONN_MAX_AGE="60")
    assert warned.returncode == 0
    assert "persistent_backend.W001" in warned.stderr

    threaded = manage_check(test_db_url, PERSISTENT_MODE="process", PERSISTENT_THREADS="4")
    assert threaded.returncode != 0
    assert "persistent_backend.E002" in threaded.stderr

    budget = manage_check(
        test_db_url, "--database", "default",
        PERSISTENT_MODE="pool", PERSISTENT_MAX_SIZE="8", PERSISTENT_PROCESSES="16",
    )  # fmt: skip
    assert "persistent_backend.W002" in budget.stderr, budget.stderr
