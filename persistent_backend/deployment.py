"""The deployment's shared vocabulary, for the backend, the dashboard, apache_conf and bench.

* ``application_name``: every connection of the site is named ``<prefix>:<host>:<pid>``
  (``application_name()`` writes it, ``parse_application_name()`` reads it back), so the
  dashboard and the sizing probe can tell the site's sessions from other clients.
* The mode a mod_wsgi daemon shape pairs with (what mode ``auto`` picks).
* PostgreSQL's connection budget: the query and the arithmetic.
* The PgBouncer switch, ``OPTIONS["persistent"]["pgbouncer"]``.

Plain functions of settings dicts and numbers: no Django settings, no I/O.
"""

import socket

DEFAULT_APPLICATION_NAME = "site"
# PostgreSQL truncates application_name to NAMEDATALEN - 1 bytes.
APPLICATION_NAME_MAX_BYTES = 63


# --- settings ----------------------------------------------------------------------------
def persistent_options(settings_dict):
    """The raw ``OPTIONS["persistent"]`` of a database's settings (not validated), or {}."""
    raw = ((settings_dict or {}).get("OPTIONS") or {}).get("persistent")
    return raw if isinstance(raw, dict) else {}


def behind_pgbouncer(settings_dict):
    """Is ``OPTIONS["persistent"]["pgbouncer"]`` on (without validating the rest)?"""
    return persistent_options(settings_dict).get("pgbouncer") is True


def application_prefix(settings_dict):
    """The first part of the site's application_name, as the backend picks it:
    ``OPTIONS["persistent"]["application_name"]``, else ``OPTIONS["application_name"]``,
    else ``"site"``."""
    configured = persistent_options(settings_dict).get("application_name")
    if configured:
        return configured
    return ((settings_dict or {}).get("OPTIONS") or {}).get(
        "application_name"
    ) or DEFAULT_APPLICATION_NAME


# --- application_name --------------------------------------------------------------------
def short_hostname():
    """This machine's host name up to its first dot (what application_name carries)."""
    return socket.gethostname().split(".")[0] or "localhost"


def host_part(hostname=None):
    """The host part of application_name: the ``hostname`` option, else the short host name."""
    return hostname or short_hostname()


def application_name(prefix, pid, host=None):
    """``<prefix>:<host>:<pid>`` within PostgreSQL's 63 bytes, shortening the host part.

    ``parse_application_name`` splits it from the right, so the pid and the host separator
    always survive; only if the prefix alone is too long is the prefix cut as well.
    """
    host = host if host is not None else short_hostname()
    name = f"{prefix}:{host}:{pid}"
    excess = len(name.encode()) - APPLICATION_NAME_MAX_BYTES
    if excess <= 0:
        return name
    host_bytes = host.encode()
    if excess <= len(host_bytes):
        host = host_bytes[: len(host_bytes) - excess].decode(errors="ignore")
        return f"{prefix}:{host}:{pid}"
    tail = f"::{pid}".encode()
    prefix = prefix.encode()[: APPLICATION_NAME_MAX_BYTES - len(tail)].decode(errors="ignore")
    return f"{prefix}::{pid}"


def parse_application_name(name, prefix):
    """(host, pid) that ``<prefix>:<host>:<pid>`` names, else None (any other client)."""
    parts = (name or "").rsplit(":", 2)
    if len(parts) == 3 and parts[0] == prefix:
        host, pid = parts[1], parts[2]
        if pid.isdigit():
            return host, int(pid)
    return None


def own_sessions_start(prefix):
    """What every application_name of the site starts with."""
    return f"{prefix}:"


# --- daemon shapes -----------------------------------------------------------------------
def mode_for_threads(threads):
    """The mode a daemon with ``threads`` threads per process pairs with: one thread keeps
    one connection per process, several share a pool."""
    return "process" if threads == 1 else "pool"


# --- the connection budget ---------------------------------------------------------------
#: max_connections, superuser_reserved_connections, reserved_connections (PostgreSQL 16+;
#: 0 before), as three columns of a SELECT.
LIMITS_COLUMNS = """current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::int"""
LIMITS_SQL = f"SELECT {LIMITS_COLUMNS}"

#: Client sessions of others: not this session, not the site's own (application_name
#: starting with ``%(own)s``: resizing a live site must not count the connections it is
#: about to replace), not a session named ``%(probe)s`` (earlier probes still exiting).
_OTHERS = """
    FROM pg_stat_activity
   WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
     AND left(coalesce(application_name, ''), length(%(own)s)) <> %(own)s
     AND coalesce(application_name, '') <> %(probe)s"""
#: The limits, then the sessions of others in total, then the role's limit and others'
#: sessions of that role, then the database's limit and others' sessions in it.
BUDGET_SQL = f"""
SELECT {LIMITS_COLUMNS},
       (SELECT count(*) {_OTHERS}),
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user),
       (SELECT count(*) {_OTHERS} AND usename = current_user),
       (SELECT datconnlimit FROM pg_database WHERE datname = current_database()),
       (SELECT count(*) {_OTHERS} AND datname = current_database())
"""


def budget_params(prefix, probe_name):
    """Parameters of ``BUDGET_SQL`` for the site named ``prefix``, asked by ``probe_name``."""
    return {"own": own_sessions_start(prefix), "probe": probe_name}


def usable_connections(max_connections, superuser_reserved, reserved):
    """Connections ordinary roles may open (what is left after the reserved slots)."""
    return max_connections - superuser_reserved - reserved
