"""Statements that survive a connection the server ended under a request's feet.

The checkout probe catches a kept connection that died while it sat in the store. One
that dies *during* a unit of work (``pg_terminate_backend()``, a restart, a pooler or a
firewall dropping it) fails that unit's next statement: with Django's own backend, a 503
or 500 for the visitor. Here the statement runs again on another connection, at most
``RETRIES`` times, when that can neither repeat nor lose a change:

* only outside any transaction: autocommit on, no ``atomic()`` block, no transaction
  opened by hand (libpq's transaction status is idle; reading it costs no I/O), and not
  a server-side (named) cursor. A transaction dies with its connection: nothing inside
  one is ever retried.
* a read (first keyword ``SELECT``, ``SHOW``, ``VALUES`` or ``TABLE``), which ran in a
  transaction of its own that the server's end rolled back, is retried after it failed;
* any other statement (a write in autocommit mode) is never retried once sent. Before it
  is sent, the socket is probed (``poll()`` with a zero timeout, as at checkout: no round
  trip); a connection already dead is replaced first, so nothing was sent on it.

``OPTIONS["persistent"]["retry"] = False`` turns this off (every such failure reaches the
code, as with Django's backend). Session state set earlier in the unit of work (``SET``,
temporary tables) does not follow the statement to the new connection. Each retry is
counted (``stats()["retried_statements"]``) and logged at INFO with the request path.
"""

import re

from django.db import InterfaceError, OperationalError
from django.db.backends.postgresql.base import CursorDebugWrapper
from django.db.backends.utils import CursorWrapper

# A server restart or a pg_terminate_backend() of every session ends all kept connections
# at once; a retry may draw a pooled one whose end has not reached its socket yet. Each
# attempt takes another connection, so a few are enough; each failed one costs one round
# trip.
RETRIES = 3
READS = frozenset({"SELECT", "SHOW", "VALUES", "TABLE"})
# Leading blanks, comments and parentheses, then the first keyword.
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.S)


def is_read(sql):
    """The statement reads (by its first keyword): running it again changes nothing."""
    if isinstance(sql, bytes):
        sql = sql.decode(errors="replace")
    elif not isinstance(sql, str):
        sql = str(sql)  # psycopg 3 sql.Composed and the like
    match = _FIRST_WORD.match(sql)
    return bool(match) and match.group(1).upper() in READS


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RetryMixin:
    """``_execute``/``_executemany`` that survive a connection lost between statements."""

    def _execute(self, sql, params, *args):
        return self._run(super()._execute, sql, params, args)

    def _executemany(self, sql, param_list, *args):
        return self._run(super()._executemany, sql, param_list, args)

    def _run(self, execute, sql, params, args):
        db = self.db
        if not db.persistent_may_retry(self.cursor):
            return execute(sql, params, *args)
        if not is_read(sql):
            verdict = db.persistent_probe()
            if not verdict.alive:
                db.persistent_replace(self, verdict.reason, verdict.detail, sent=False)
            return execute(sql, params, *args)
        for attempt in range(RETRIES + 1):
            try:
                return execute(sql, params, *args)
            except (OperationalError, InterfaceError) as exc:
                if attempt == RETRIES or not db.persistent_connection_lost():
                    raise
                db.persistent_replace(self, "broken", first_line(exc), sent=True)


class PersistentCursorWrapper(RetryMixin, CursorWrapper):
    pass


class PersistentCursorDebugWrapper(RetryMixin, CursorDebugWrapper):
    pass
