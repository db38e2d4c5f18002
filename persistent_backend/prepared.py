"""``OPTIONS["persistent"]["prepared_statements"] = True``: server-side binding and psycopg 3's
automatic preparation on kept connections (docs/backend.md, "Prepared statements").

Django's psycopg 3 backend binds parameters on the client (``ClientCursor``) and connects
with ``prepare_threshold=None``: every execution is parsed and planned again. The switch
picks Django's own ``ServerBindingCursor`` (what ``OPTIONS["server_side_binding"] = True``
does) and leaves ``prepare_threshold`` to the user's ``OPTIONS["prepare_threshold"]``, else
to psycopg's default: a statement executed that many times on a connection is prepared
there, and later executions send only its name and parameters.

A prepared statement lives in the server session, and psycopg keeps the names it prepared
in the connection object. ``DISCARD ALL`` (``reset: "discard"``, every pinned unit of work)
drops the statements on the server; psycopg 3.3 notices that only when it sees the
statement for the first time since its last clear, so a second reset on the same
connection left it executing names the server no longer has ("prepared statement _pg3_0
does not exist"). ``discard_all`` therefore tells it every time (``forget``). Recycling
(``max_age``, ``max_uses``) closes the connection, and its statements with it.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql.features import DatabaseFeatures as PostgresFeatures
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.utils.functional import cached_property

#: The oldest PgBouncer whose transaction pooling carries psycopg's prepared statements:
#: 1.21 tracks protocol-level ones, 1.22 added the DEALLOCATE ALL psycopg sends after a
#: rollback (psycopg's docs, "Using prepared statements with PgBouncer").
PGBOUNCER_MIN_VERSION = "1.22"


def enabled(settings_dict):
    """Is ``OPTIONS["persistent"]["prepared_statements"]`` on (without validating the rest)?"""
    raw = (settings_dict.get("OPTIONS") or {}).get("persistent")
    return isinstance(raw, dict) and raw.get("prepared_statements") is True


class DatabaseFeatures(PostgresFeatures):
    """Django's, knowing that the switch binds on the server like
    ``OPTIONS["server_side_binding"]``: Django 6.1 then splits bulk operations into batches
    of at most 65,535 parameters (``max_query_params``), as it does for its own option."""

    @cached_property
    def uses_server_side_binding(self):
        """True with Django's ``server_side_binding`` or with ``prepared_statements``."""
        settings_dict = self.connection.settings_dict
        return is_psycopg3 and (
            settings_dict["OPTIONS"].get("server_side_binding") is True or enabled(settings_dict)
        )


def validate_options(options, fail):
    """Part of ``Options.validate``: the switch, the driver and PgBouncer's declaration."""
    declared = options.pgbouncer_max_prepared_statements
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 0:
        fail(
            "pgbouncer_max_prepared_statements",
            "use PgBouncer's max_prepared_statements (an integer >= 0)",
        )
    if declared and not options.pgbouncer:
        fail("pgbouncer_max_prepared_statements", "declares a PgBouncer: set pgbouncer=True")
    if not isinstance(options.prepared_statements, bool):
        fail("prepared_statements", "use True or False")
    if not options.prepared_statements:
        return
    if not is_psycopg3:
        fail("prepared_statements", "needs psycopg 3 (pip install 'psycopg[binary]')")
    if options.pgbouncer and not declared:
        fail(
            "prepared_statements",
            "with pgbouncer=True, a statement prepared on one server connection is executed "
            "on whichever PgBouncer lends next; declare a PgBouncer >= "
            f"{PGBOUNCER_MIN_VERSION} with max_prepared_statements > 0 in "
            'OPTIONS["persistent"]["pgbouncer_max_prepared_statements"], or turn it off',
        )
    if options.pgbouncer and not _libpq_closes_prepared():
        fail(
            "prepared_statements",
            "behind PgBouncer psycopg deallocates with libpq >= 17's protocol-level close "
            "(PgBouncer refuses DEALLOCATE <name>); install psycopg[binary], which ships it",
        )


def connection_params(params, settings_dict, options):
    """``get_connection_params``: the cursor class and the threshold the switch implies."""
    if not options.prepared_statements:
        return
    user_options = settings_dict["OPTIONS"]
    if user_options.get("server_side_binding") is False:
        raise ImproperlyConfigured(
            'OPTIONS["server_side_binding"] = False contradicts OPTIONS["persistent"]'
            '["prepared_statements"] = True (prepared statements need server-side binding): '
            "remove one of them"
        )
    from django.db.backends.postgresql.base import Cursor, ServerBindingCursor

    if params.get("cursor_factory") is Cursor:  # Django's choice, not the user's own class
        params["cursor_factory"] = ServerBindingCursor
    if "prepare_threshold" not in user_options:
        params.pop("prepare_threshold", None)  # Django's None: psycopg's default applies


def discard_all(raw):
    """``DISCARD ALL`` on a raw connection, and psycopg told that its statements are gone."""
    with raw.cursor() as cursor:
        if not is_psycopg3:
            cursor.execute("DISCARD ALL")
            return
        # Forgotten first: psycopg then sees no statement of its own to drop (no DEALLOCATE
        # ALL after it). If DISCARD ALL fails, the connection is closed (returning.py).
        forget(raw)
        cursor.execute("DISCARD ALL", prepare=False)  # never a prepared statement itself


def forget(raw):
    """Empty psycopg 3's cache of prepared statements without a round trip.

    psycopg has no public call for it: ``clear()`` of its prepare manager empties the cache
    and queues a ``DEALLOCATE ALL``, which the ``DISCARD ALL`` that follows does anyway;
    dropping that queue saves a round trip (a psycopg without it sends the DEALLOCATE ALL
    after the next statement: harmless).
    """
    manager = getattr(raw, "_prepared", None)
    if manager is not None and manager.clear():
        pending = getattr(manager, "_to_flush", None)
        if pending is not None:
            pending.clear()


def _libpq_closes_prepared():
    import psycopg

    return psycopg.capabilities.has_send_close_prepared()
