"""System checks (``manage.py check``), also logged once per mod_wsgi daemon process.

* ``persistent_backend.E001``: invalid ``OPTIONS["persistent"]``.
* ``persistent_backend.E002``: ``mode: "process"`` in a threaded server (threads would
  queue for the process's single connection).
* ``persistent_backend.E003``: Django's own ``OPTIONS["pool"]`` set with this engine.
* ``persistent_backend.W001``: ``CONN_MAX_AGE`` set (ignored: the backend manages lifetime).
* ``persistent_backend.W002``: connections per process x processes exceeds the server's
  ``max_connections`` budget (database check: ``manage.py check --database default``).
* ``persistent_backend.I001``: ``CONN_HEALTH_CHECKS`` set (no effect: checkouts are probed).
* ``persistent_backend.I002`` / ``E004``: behind PgBouncer (``pgbouncer: True``): what the
  switch changed, and OPTIONS that cannot work in transaction pooling (see pgbouncer.py).
"""

import logging

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from persistent_backend import deployment, environment, pgbouncer
from persistent_backend.options import Options

logger = logging.getLogger("persistent_backend")
ENGINE = "persistent_backend"


def _aliases(databases=None):
    from django.conf import settings

    for alias, settings_dict in settings.DATABASES.items():
        if settings_dict.get("ENGINE") == ENGINE and (databases is None or alias in databases):
            yield alias, settings_dict


def settings_messages(alias, settings_dict, shape=None):
    """Checks that need no database: options, CONN_MAX_AGE, process mode when threaded."""
    messages = []
    where = f"DATABASES['{alias}']"
    try:
        options = Options.from_settings(settings_dict)
    except ImproperlyConfigured as exc:
        return [checks.Error(f"{where}: {exc}", id="persistent_backend.E001")]
    shape = shape or environment.detect_shape(options)
    mode, _ = environment.resolve_mode(options, shape)
    if settings_dict.get("CONN_MAX_AGE", 0) != 0:
        messages.append(
            checks.Warning(
                f"{where}: CONN_MAX_AGE={settings_dict['CONN_MAX_AGE']!r} is ignored by "
                "persistent_backend, which keeps connections itself.",
                hint='Set CONN_MAX_AGE to 0 and use OPTIONS["persistent"]["max_age"].',
                id="persistent_backend.W001",
            )
        )
    if settings_dict.get("CONN_HEALTH_CHECKS"):
        messages.append(
            checks.Info(
                f"{where}: CONN_HEALTH_CHECKS has no effect: every checkout is already "
                "probed without a round trip.",
                hint='Remove it; use OPTIONS["persistent"]["ping_after"] for a ping.',
                id="persistent_backend.I001",
            )
        )
    if (settings_dict.get("OPTIONS") or {}).get("pool"):
        messages.append(
            checks.Error(
                f"{where}: OPTIONS['pool'] (Django's psycopg 3 pool) cannot be combined "
                "with persistent_backend.",
                hint='Remove it and set OPTIONS["persistent"]["mode"] = "pool".',
                id="persistent_backend.E003",
            )
        )
    if mode == "process" and shape.threaded:
        threads = "several" if shape.threads is None else shape.threads
        messages.append(
            checks.Error(
                f"{where}: mode 'process' keeps one connection per process, but this "
                f"{shape.server} server runs {threads} threads per process: requests "
                "would queue for that connection (up to checkout_timeout) and then fail.",
                hint='Use mode "pool" (or "auto"), or run the daemon with threads=1.',
                id="persistent_backend.E002",
            )
        )
    messages.extend(pgbouncer.messages(alias, settings_dict, options))
    return messages


def per_process_connections(options, shape):
    """Most connections one process may hold, or None if it cannot be known."""
    mode, _ = environment.resolve_mode(options, shape)
    if mode == "process":
        return 1
    if mode == "pool":
        return environment.default_max_size(options, shape)
    return shape.threads  # thread mode: one per thread


def budget_messages(alias, options, shape, limits):
    """W002 when processes x connections per process exceeds what the server allows."""
    per_process = per_process_connections(options, shape)
    if per_process is None or not shape.processes or options.pgbouncer:
        return []  # behind PgBouncer, PostgreSQL sees PgBouncer's pool, not these
    max_connections, superuser_reserved, reserved = limits
    budget = deployment.usable_connections(max_connections, superuser_reserved, reserved)
    wanted = per_process * shape.processes
    if wanted <= budget:
        return []
    return [
        checks.Warning(
            f"DATABASES['{alias}']: {shape.processes} process(es) x {per_process} "
            f"connection(s) = {wanted}, more than the server allows ordinary users "
            f"({max_connections} max_connections - {superuser_reserved + reserved} "
            f"reserved = {budget}).",
            hint="Lower max_size or the number of processes, or raise max_connections "
            "(count the other clients of the server too).",
            id="persistent_backend.W002",
        )
    ]


def server_limits(cursor):
    """``(max_connections, reserved slots, other clients)`` from the server
    (deployment.LIMITS_SQL)."""
    cursor.execute(deployment.LIMITS_SQL)
    return tuple(cursor.fetchone())


@checks.register()
def check_settings(app_configs=None, **kwargs):
    """System checks of every persistent_backend alias's OPTIONS (no database access)."""
    messages = []
    for alias, settings_dict in _aliases():
        messages.extend(settings_messages(alias, settings_dict))
    return messages


@checks.register(checks.Tags.database)
def check_connection_budget(app_configs=None, databases=None, **kwargs):
    """``manage.py check --database``: the daemons' connections against PostgreSQL's budget
    (W002)."""
    from django.db import DatabaseError, connections

    messages = []
    for alias, settings_dict in _aliases(databases or ()):
        try:
            options = Options.from_settings(settings_dict)
        except ImproperlyConfigured:
            continue  # reported as E001
        shape = environment.detect_shape(options)
        try:
            with connections[alias].cursor() as cursor:
                limits = server_limits(cursor)
        except DatabaseError as exc:
            logger.info("connection budget check for '%s' skipped: %s", alias, exc)
            continue
        messages.extend(budget_messages(alias, options, shape, limits))
    return messages


def log_runtime_checks(wrapper, store):
    """Under mod_wsgi (where manage.py check never runs): log the checks once per process.

    Called right after the process's first connection is opened; the budget check costs
    that connection one query, once.
    """
    if store.shape.server != "mod_wsgi":
        return
    try:
        messages = settings_messages(wrapper.alias, wrapper.settings_dict, store.shape)
    except Exception:
        logger.exception("persistent_backend checks failed")
        return
    try:
        with wrapper.connection.cursor() as cursor:
            limits = server_limits(cursor)
        if not wrapper.connection.autocommit:
            wrapper.connection.rollback()
        messages.extend(budget_messages(wrapper.alias, store.options, store.shape, limits))
    except Exception as exc:
        logger.info("connection budget check for '%s' skipped: %s", wrapper.alias, exc)
    for message in messages:
        level = logging.ERROR if message.is_serious() else logging.WARNING
        if message.level < checks.WARNING:
            level = logging.INFO
        hint = f" HINT: {message.hint}" if message.hint else ""
        logger.log(level, "%s: %s%s", message.id, message.msg, hint)
