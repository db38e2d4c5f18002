"""Statements and the connection under them: move only what was never sent, pin session state.

The checkout probe catches a kept connection that died while it sat in the store. One
that dies *during* a unit of work (``pg_terminate_backend()``, a restart, a pooler or a
firewall dropping it) would fail that unit's next statement: with Django's own backend, a
503 or 500 for the visitor. The rule here:

**A statement moves to another connection only if it was never sent.** Before each
statement outside a transaction, the socket is probed (libpq's status and a ``poll()``
with a zero timeout, as at checkout: no round trip). A connection the server already
ended is replaced first, so the statement runs exactly once, on the new one. Once a
statement has been sent it is never sent again, whatever it is: the client cannot tell
"the server ended my session before it read my statement" from "the server ended my
running statement" (an operator's ``pg_terminate_backend()`` of a runaway query, which
must not run again). So a read, a ``nextval()``, a ``SELECT ... INTO``, several
statements in one string: all run at most once.

Nothing moves, and the statement fails exactly as with Django's backend, when:

* a transaction is open (``atomic()``, autocommit off, a hand-written ``BEGIN``): it dies
  with its connection;
* the cursor is server-side (named): the cursor lives on the old session;
* the unit of work is pinned (``pinning.py``): it carries session state the new
  connection would not have;
* ``OPTIONS["persistent"]["retry"] = False``.

Counted in ``stats()``: ``retried_statements`` (moved before sending) and
``retry_refusals`` (a statement that failed because its connection was lost, by reason:
``sent``, ``transaction``, ``server_side_cursor``, ``pinned``, ``disabled``).
"""

from django.db import InterfaceError, OperationalError
from django.db.backends.postgresql.base import CursorDebugWrapper
from django.db.backends.utils import CursorWrapper

# A server restart or a pg_terminate_backend() of every session ends all kept connections
# at once; a replacement may be a pooled one whose end the probe sees only now. Each
# attempt takes another connection; probing costs no round trip.
RETRIES = 3


def _driver_attribute(name):
    """A driver cursor attribute that reaches its connection (I/O, or the connection
    itself): with lend "transaction" (lending.py), using it keeps the connection to the
    end of the unit of work, on a driver cursor of the connection held now."""

    def get(self):
        db = self.db
        if db.persistent_lending:
            db.persistent_hold(f"cursor.{name}")
            db.persistent_bind(self)
        try:  # Django's own wrapper method first (CursorDebugWrapper.copy logs the query)
            return getattr(super(RetryMixin, self), name)
        except AttributeError:
            return getattr(self.cursor, name)

    return property(get)


class RetryMixin:
    """``_execute``/``_executemany``: probe and move before sending, never after."""

    connection = _driver_attribute("connection")
    copy = _driver_attribute("copy")  # psycopg 3
    stream = _driver_attribute("stream")
    copy_expert = _driver_attribute("copy_expert")  # psycopg2
    copy_from = _driver_attribute("copy_from")
    copy_to = _driver_attribute("copy_to")

    # Django calls both as executor(sql, params, many, context) (_execute_with_wrappers):
    # named parameters, not *args, keep the call cheap (one per statement). The two bodies
    # are alike on purpose: a shared helper was one more call per statement.
    def _execute(self, sql, params, many=None, context=None):
        db = self.db
        refusal = db.persistent_before_statement(self, sql)
        try:
            return super()._execute(sql, params, many, context)
        except (OperationalError, InterfaceError):
            db.persistent_statement_failed(refusal)
            raise

    def _executemany(self, sql, param_list, many=None, context=None):
        db = self.db
        refusal = db.persistent_before_statement(self, sql)
        try:
            return super()._executemany(sql, param_list, many, context)
        except (OperationalError, InterfaceError):
            db.persistent_statement_failed(refusal)
            raise

    def callproc(self, procname, params=None, kparams=None):
        """A stored procedure pins the unit of work: its effects cannot be classified."""
        db = self.db
        db.persistent_pin("callproc")  # a function we cannot look into
        if db.persistent_lending:
            db.persistent_bind(self)
        return super().callproc(procname, params, kparams)


class LendMixin:
    """``execute()``/``executemany()`` of a wrapper whose store lends per transaction: the
    connection goes back once the statement's results are in the cursor and it is at rest.
    Only such wrappers' cursors have it (``DatabaseWrapper.make_cursor``): the others pay
    no frame per statement for it."""

    def execute(self, sql, params=None):
        """Django's ``execute()``, then lend if at rest."""
        result = super().execute(sql, params)
        if self.db.persistent_lending:
            self.db.persistent_lend()
        return result

    def executemany(self, sql, param_list):
        """Django's ``executemany()``, lending like ``execute()``."""
        result = super().executemany(sql, param_list)
        if self.db.persistent_lending:
            self.db.persistent_lend()
        return result


class PersistentCursorWrapper(RetryMixin, CursorWrapper):
    """The cursor wrapper of kept connections."""


class PersistentCursorDebugWrapper(RetryMixin, CursorDebugWrapper):
    """The cursor wrapper of kept connections under ``DEBUG``."""


class LendingCursorWrapper(LendMixin, PersistentCursorWrapper):
    """The cursor wrapper of connections lent per transaction."""


class LendingCursorDebugWrapper(LendMixin, PersistentCursorDebugWrapper):
    """The same under ``DEBUG``."""
