"""Settings safety, checked in fresh interpreters so the test run's own settings don't leak."""

import json
import secrets
from pathlib import Path

import pytest

from harness.site import run_manage, run_python

SITE_DIR = Path(__file__).resolve().parents[1] / "site"
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'toolbar': 'debug_toolbar' in s.INSTALLED_APPS, "
    "'middleware': any('debug_toolbar' in m for m in s.MIDDLEWARE), "
    "'engine': s.DATABASES['default']['ENGINE'], 'hosts': s.ALLOWED_HOSTS}))"
)


def run_site_python(code, **env):
    settings = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": "postgres://u:p@127.0.0.1:1/db",
        **env,
    }
    return run_python(["-c", code], settings)


def probe(**env):
    result = run_site_python(PROBE, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_debug_is_off_and_toolbar_absent_by_default():
    info = probe(DJANGO_SECRET_KEY="x" * 50)
    assert info["debug"] is False
    assert info["toolbar"] is False and info["middleware"] is False
    assert info["engine"] == "persistent_backend"


def test_debug_on_loads_the_toolbar():
    info = probe(DJANGO_DEBUG="1")
    assert info["debug"] is True
    assert info["toolbar"] is True and info["middleware"] is True


def test_missing_secret_key_is_a_clear_error():
    result = run_site_python(PROBE)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_boolean_is_a_clear_error(value):
    result = run_site_python(PROBE, DJANGO_SECRET_KEY="x" * 50, DJANGO_DEBUG=value)
    assert result.returncode != 0
    assert "is not a boolean" in result.stderr


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / "site.env"
    env_file.write_text(f"DJANGO_SECRET_KEY={'y' * 50}\nDJANGO_ALLOWED_HOSTS=a.example,b.example\n")
    info = probe(DJANGO_ENV_FILE=str(env_file))
    assert info["hosts"] == ["a.example", "b.example"]
    info = probe(DJANGO_ENV_FILE=str(env_file), DJANGO_ALLOWED_HOSTS="c.example")
    assert info["hosts"] == ["c.example"]


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": "postgres://u:p@127.0.0.1:1/db",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_debug_toolbar_unreachable_with_debug_off(client):
    assert client.get("/__debug__/render_panel/").status_code == 404


PERSISTENT_PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps(s.DATABASES['default']['OPTIONS']['persistent']))"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {}),
        ({"PERSISTENT_LEND": "", "PERSISTENT_PREPARED": "0"}, {}),
        ({"PERSISTENT_LEND": "transaction"}, {"lend": "transaction"}),
        ({"PERSISTENT_LEND": "request"}, {"lend": "request"}),
        ({"PERSISTENT_PREPARED": "1"}, {"prepared_statements": True}),
    ],
)
def test_lend_and_prepared_statements_are_set_only_when_given(env, expected):
    result = run_site_python(PERSISTENT_PROBE, DJANGO_SECRET_KEY="x" * 50, **env)
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    assert {key: options[key] for key in ("lend", "prepared_statements") if key in options} == (
        expected
    )
    assert options["mode"] == "auto"  # the other keys as before
