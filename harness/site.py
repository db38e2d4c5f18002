"""The site's processes: where it lives, the environment it gets, ``manage.py`` runs.

One scrub list: settings and libpq variables of the caller's shell never reach a site
process started here; each caller names the settings it wants, and nothing else differs.
``DJANGO_PSYCOPG`` is kept: it is the driver the whole run was asked to use.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
SITE_DIR = REPO_DIR / "site"
MANAGE = SITE_DIR / "manage.py"

SCRUBBED_PREFIXES = ("DJANGO_", "PERSISTENT_", "DASHBOARD_", "DATABASE_", "PG", "ADMIN_")
KEPT = ("DJANGO_PSYCOPG",)
STOCK_ENGINE = "django.db.backends.postgresql"


def clean_environ():
    """``os.environ`` without the site's settings and libpq's variables."""
    return {
        key: value
        for key, value in os.environ.items()
        if key in KEPT or not key.startswith(SCRUBBED_PREFIXES)
    }


def site_environment(db_url, secret_key, **extra):
    """A site process's settings: the database ``db_url``, production-like, no env file."""
    return {
        "DATABASE_URL": db_url,
        "DJANGO_ENV_FILE": "/dev/null",
        "DJANGO_SECRET_KEY": secret_key,
        "DJANGO_DEBUG": "0",
        "DJANGO_HTTPS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        **{key: str(value) for key, value in extra.items()},
    }


def run_python(args, env=None, timeout=120, cwd=SITE_DIR):
    """``python ARGS`` in a fresh process: the cleaned environment with
    ``DJANGO_ENV_FILE=/dev/null`` (settings from ``env`` only, which may override it).
    Returns the CompletedProcess (text output captured); the caller checks the code."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env={**clean_environ(), "DJANGO_ENV_FILE": "/dev/null", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_manage(args, env=None, timeout=120, cwd=SITE_DIR):
    """``python site/manage.py ARGS`` as ``run_python`` runs it."""
    return run_python([MANAGE, *args], env, timeout, cwd)
