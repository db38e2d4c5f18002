"""Read PostgreSQL's connection budget through the site's DATABASE_URL.

The URL comes from ``--database-url``, else the environment, else the settings env file
(``DJANGO_ENV_FILE`` or ``<repo>/var/site.env``), the same places settings.py reads.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg2
from dotenv import dotenv_values

from persistent_backend import deployment

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_ENV_FILE = REPO_DIR / "var" / "site.env"
CONNECT_TIMEOUT = 3

#: This probe's application_name (not counted as another client by later probes).
PROBE_NAME = "apache_conf sizing"


@dataclass(frozen=True)
class PgFacts:
    """What the server says (``SHOW`` values and pg_stat_activity counts)."""

    where: str
    max_connections: int
    superuser_reserved: int
    reserved: int
    others: int
    role_limit: int
    role_others: int
    database_limit: int
    database_others: int


class Unreachable(Exception):
    """PostgreSQL could not be asked; ``str()`` is one line."""


def site_setting(name, explicit=None):
    """A site setting as settings.py finds it: ``explicit``, the environment, the env file."""
    if explicit:
        return explicit
    if os.environ.get(name):
        return os.environ[name]
    env_file = Path(os.environ.get("DJANGO_ENV_FILE") or DEFAULT_ENV_FILE)
    try:
        values = dotenv_values(env_file) if env_file.is_file() else {}
    except OSError:  # e.g. mode 600 for the daemon user, read by someone else
        values = {}
    return values.get(name) or None


def site_database_url(explicit=None):
    """The site's DATABASE_URL, or None when neither the environment nor the file has one."""
    return site_setting("DATABASE_URL", explicit)


def site_prefix(explicit=None):
    """The first part of the site's own application_name (``<prefix>:<host>:<pid>``)."""
    return (
        site_setting("PERSISTENT_APPLICATION_NAME", explicit) or deployment.DEFAULT_APPLICATION_NAME
    )


def describe(url):
    """host:port/dbname of a URL, without the credentials; Unreachable if it is no URL."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # e.g. a password with '#' or '/' that is not percent-encoded
        raise Unreachable(
            "DATABASE_URL is not a valid URL: percent-encode the special characters of "
            "its password ('#' as %23, '/' as %2F, '@' as %40)"
        ) from None
    host = parts.netloc.rpartition("@")[2]
    if port:
        host = host.rsplit(":", 1)[0]
    host = unquote(host) or "localhost"  # a socket directory is %2F-quoted
    return f"{host}:{port or 5432}{parts.path or '/'}"


def probe(url, prefix=None):
    """Ask the server for its connection budget; raise Unreachable with one line.

    Sessions named by the site's application_name (prefix ``prefix``, default: the
    site's) are the site's own and not counted as used by others: resizing a live site
    must not count the connections it is about to replace.
    """
    params = deployment.budget_params(prefix or site_prefix(), PROBE_NAME)
    where = describe(url)
    try:
        conn = psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT, application_name=PROBE_NAME)
    except psycopg2.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Unreachable(f"PostgreSQL unreachable at {where} ({reason})") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(deployment.BUDGET_SQL, params)
            row = cur.fetchone()
    finally:
        conn.close()
    return PgFacts(where, *(int(value) for value in row))
