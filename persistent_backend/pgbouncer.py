"""``OPTIONS["persistent"]["pgbouncer"] = True``: the site reaches PostgreSQL through PgBouncer
in transaction pooling (``pool_mode = transaction``).

PgBouncer then lends a PostgreSQL server connection to this client for one transaction at
a time; in autocommit mode every statement is its own transaction. Whatever a session
keeps *between* transactions stays on the server connection that ran it, goes to the next
client PgBouncer lends it to, and is missing from the server connection this client gets
next. The switch makes the backend safe there, and ``manage.py check`` says what it did
(``persistent_backend.I002``):

* ``DISABLE_SERVER_SIDE_CURSORS = True`` (Django's own setting, forced on): otherwise
  ``QuerySet.iterator()`` DECLAREs a cursor ``WITH HOLD`` in one transaction and FETCHes
  from it in the next, which PgBouncer may send to another server connection
  (``cursor "_django_curs_..." does not exist``). The rows are then read through a
  client-side cursor, in chunks from the driver's memory.
* ``reset: "discard"`` is refused (``E001``): ``DISCARD ALL`` would reset whichever server
  connection PgBouncer lends for that statement, not the session the request used, which
  ended with its last transaction. Code that needs it keeps session state, which
  transaction pooling cannot give it.
* OPTIONS that set session state when a connection opens are refused at connect and by
  ``persistent_backend.E004``: ``assume_role`` (Django's ``SET ROLE``), ``options``
  (libpq startup ``-c`` settings, which PgBouncer rejects as unsupported startup
  parameters) and a psycopg 3 ``prepare_threshold`` (named prepared statements, which
  PgBouncer 1.18 does not carry from one server connection to another), unless the
  operator declares a PgBouncer >= 1.22 that does, with
  ``OPTIONS["persistent"]["pgbouncer_max_prepared_statements"]`` (see prepared.py).
* The connection budget check (``W002``) does not apply: the site's connections go to
  PgBouncer, and PostgreSQL sees at most PgBouncer's pool (``manage.py pgbouncer_conf``
  sizes it).

What needs no change: ``application_name`` (``<prefix>:<host>:<pid>``) and the time zone
Django sets are parameters PgBouncer tracks per client: it lists each client's
application_name in ``SHOW CLIENTS`` and sets the client's values on every server
connection it lends, so ``pg_stat_activity`` names the web process whose transaction runs
there. Transactions (``atomic()``, ``ATOMIC_REQUESTS``), savepoints and
``select_for_update()`` work: they live inside one transaction. The zero-round-trip probe
sees a PgBouncer restart like a PostgreSQL one (the socket to PgBouncer is closed).
"""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from persistent_backend import deployment

#: OPTIONS keys that set session state when a connection opens, and why each cannot work.
SESSION_OPTIONS = {
    "assume_role": (
        "Django runs SET ROLE once per connection: behind transaction pooling it stays on "
        "one server connection and the site's next transactions run as the login role"
    ),
    "options": (
        "libpq startup settings ('-c name=value'): PgBouncer refuses startup parameters it "
        "does not track, and told to ignore them it never passes them on"
    ),
}
HINTS = {
    "assume_role": "Log in as that role (DATABASE_URL), or grant its privileges to the login role.",
    "options": "Set them on the role instead: ALTER ROLE <site role> SET statement_timeout = '5s'.",
    "prepare_threshold": (
        "Leave it unset (Django's default: no prepared statements), or declare a PgBouncer "
        '>= 1.22 with OPTIONS["persistent"]["pgbouncer_max_prepared_statements"].'
    ),
}
PREPARE_WHY = (
    "psycopg 3 prepares a statement by name on one server connection and executes it on "
    "whichever one PgBouncer lends next, which PgBouncer 1.18 does not support"
)


def enabled(settings_dict):
    """Is ``OPTIONS["persistent"]["pgbouncer"]`` on (without validating the rest)?"""
    return deployment.behind_pgbouncer(settings_dict)


def validate_options(options, fail):
    """Part of ``Options.validate``: the switch and the options it rules out."""
    if not isinstance(options.pgbouncer, bool):
        fail("pgbouncer", "use True or False")
    if options.pgbouncer and options.reset == "discard":
        fail(
            "reset",
            "with pgbouncer=True, DISCARD ALL would reset whichever server connection "
            "PgBouncer lends for it, not the session the request used (it ended with its "
            "transaction); use 'rollback' and keep no state between transactions, or run "
            "PgBouncer with pool_mode = session",
        )


def configure(settings_dict):
    """``DatabaseWrapper.__init__``: the Django settings the switch implies (no I/O)."""
    if enabled(settings_dict):
        settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True


def carries_prepared(settings_dict):
    """Did the operator declare PgBouncer's ``max_prepared_statements`` > 0 (unvalidated)?"""
    declared = deployment.persistent_options(settings_dict).get("pgbouncer_max_prepared_statements")
    return isinstance(declared, int) and not isinstance(declared, bool) and declared > 0


def refusals(settings_dict):
    """``[(key, why)]`` for the OPTIONS that cannot work behind transaction pooling."""
    if not enabled(settings_dict):
        return []
    options = settings_dict.get("OPTIONS") or {}
    found = [(key, why) for key, why in SESSION_OPTIONS.items() if options.get(key)]
    if options.get("prepare_threshold") is not None and not carries_prepared(settings_dict):
        found.append(("prepare_threshold", PREPARE_WHY))
    return found


def check_connection_params(settings_dict):
    """At connect: refuse what would silently misbehave behind PgBouncer."""
    for key, why in refusals(settings_dict):
        raise ImproperlyConfigured(
            f'OPTIONS["{key}"] cannot be used with OPTIONS["persistent"]["pgbouncer"]: '
            f"{why}. {HINTS[key]}"
        )


def messages(alias, settings_dict, options):
    """E004 for each refused OPTIONS entry, and I002 saying what the switch changed."""
    if not options.pgbouncer:
        return []
    where = f"DATABASES['{alias}']"
    found = [
        checks.Error(
            f'{where}: OPTIONS["{key}"] cannot be used behind PgBouncer\'s transaction '
            f"pooling: {why}.",
            hint=HINTS[key],
            id="persistent_backend.E004",
        )
        for key, why in refusals(settings_dict)
    ]
    found.append(
        checks.Info(
            f"{where}: pgbouncer=True (PgBouncer, transaction pooling): "
            "DISABLE_SERVER_SIDE_CURSORS is forced on (QuerySet.iterator() reads through a "
            "client-side cursor: a server-side cursor would outlive its transaction); "
            "reset is 'rollback' only (no session state survives a transaction); the "
            "PostgreSQL budget check W002 is left to PgBouncer's pool (default_pool_size); "
            f"application_name '{options.application_name}:<host>:<pid>' is kept: PgBouncer "
            "tracks it per client and sets it on each server connection it lends.",
            hint="Generate PgBouncer's config with `python site/manage.py pgbouncer_conf`.",
            id="persistent_backend.I002",
        )
    )
    return found
