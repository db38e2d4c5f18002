"""Lending per transaction (``OPTIONS["persistent"]["lend"] = "transaction"``, pool mode).

With ``lend: "request"`` a request keeps its connection from its first statement to its
end. With ``"transaction"`` it gives it back to the pool at rest, between two
transactions:

* after each statement run in autocommit outside ``atomic()`` (client-side cursors hold
  the whole result once ``execute()`` returns, so fetching needs no connection), and
* when the outermost ``atomic()`` block ends (after its ``on_commit`` hooks ran),

and the request's next statement borrows again through the store's usual checkout (its
zero-round-trip probe; usually the same connection). The connection is *kept* until
the end of the unit of work, exactly as with ``"request"``, when lending cannot be shown
to be safe: the unit of work is pinned (session state, a server-side cursor:
pinning.py), a transaction is open (``atomic()``, autocommit off, a hand-written
``BEGIN``), or the code used the driver's objects directly (``connection.connection``
while lent, ``cursor.connection``, ``copy``/``copy_expert``). A statement that raised
does not lend: the next one that succeeds does.

While lent, the wrapper has no ``connection`` attribute of its own: Django's entry
points (``cursor()``, ``ensure_connection()``, ``set_autocommit()``, ``commit()``, ...)
borrow first, and any other read of ``connection.connection`` goes through
``LentConnection``, which borrows and keeps the connection to the end of the unit of
work. A ``CursorWrapper`` kept across a lend runs its next statement on a fresh driver
cursor of the connection borrowed for it (``pinning.SessionMixin.persistent_rebind``).
"""

import os


class LentConnection:
    """``DatabaseWrapper.connection`` while lent (a non-data descriptor: an instance that
    holds a connection, or none at all, finds it in its own ``__dict__`` first)."""

    def __get__(self, wrapper, owner=None):
        if wrapper is None:
            return self
        wrapper.persistent_hold("connection.connection")
        wrapper.persistent_borrow()
        return wrapper.__dict__["connection"]


class LendingMixin:
    """The DatabaseWrapper's side of lending (inert unless its store lends)."""

    connection = LentConnection()
    persistent_lending = False  # its store lends per transaction (set at checkout)
    persistent_lent = False  # the connection went back to the pool mid unit of work
    persistent_lent_to = None  # the store it went back to
    persistent_borrowing = None  # that store while connect() takes one from it again
    persistent_lends = 0  # lends in the current (or last) unit of work
    persistent_held = None  # why this unit of work keeps its connection to its end

    def persistent_hold(self, reason):
        """Keep the connection to the end of the unit of work (the first reason is kept)."""
        if self.persistent_held is None:
            self.persistent_held = reason

    def persistent_lend(self):
        """At rest between two transactions: give the connection back to its store."""
        record = self.persistent_record
        if record is None or not record.store.lends_per_transaction:
            return
        raw = self.__dict__.get("connection")
        if (
            raw is not record.raw
            or self.in_atomic_block
            or not self.autocommit
            or self.run_on_commit
            or self.persistent_pinned is not None
            or self.persistent_held is not None
            or record.owner_pid != os.getpid()
            or record.checks.in_transaction()
        ):
            return
        self.persistent_record = None
        self._connection_pid = None
        del self.__dict__["connection"]  # reads go through LentConnection now
        self.persistent_lent = True
        self.persistent_lent_to = store = record.store
        self.persistent_lends += 1
        store.checkin(record, lend=True)

    def persistent_borrow(self):
        """Take a connection again for the next statement: an idle one through the store's
        checkout (its probe included), else ``connect()`` opens one (counted as a borrow)."""
        if not self.persistent_lent:
            return
        self.persistent_lent = False
        self.__dict__["connection"] = None
        store = self.persistent_lent_to
        if store.retired:
            store = None  # the settings changed: connect() finds the current store
        try:
            record = store and store.acquire(self._slot, borrow=True, reserve=False)
            if record is None:
                self.persistent_borrowing = store
                self.connect()  # none idle: open one
            else:
                self._persistent_adopt(record)
        except BaseException:
            if self.__dict__.get("connection") is None:  # nothing held: still lent
                del self.__dict__["connection"]
                self.persistent_lent = True
            raise
        finally:
            self.persistent_borrowing = None

    def _persistent_adopt(self, record):
        """``connect()``'s bookkeeping for a borrowed connection (the unit of work's lease
        info stays; only the backend it names follows the connection)."""
        self._adopt(record)
        self.persistent_record = record
        self._connection_pid = record.owner_pid
        lease = self.persistent_lease
        if lease is not None:
            lease.record = record

    def persistent_bind(self, cursor_wrapper):
        """A cursor kept across a lend (or a unit of work's end) runs on the connection
        held now, never on one that went back to the store."""
        if self.persistent_lent:
            self.persistent_borrow()
        raw = self.__dict__.get("connection")
        if raw is None or cursor_wrapper.cursor.connection is not raw:
            self.persistent_rebind(cursor_wrapper)

    def persistent_end_lending(self):
        """The unit of work ends (or its connection is closed): nothing is lent any more."""
        if self.persistent_lent:
            self.__dict__["connection"] = None
            self.persistent_lent = False
            self.persistent_lent_to = None
        if not self.in_atomic_block:
            self.persistent_held = None

    # -- Django's entry points borrow before they look at self.connection ---------------
    def persistent_ensure_connection(self):
        """``ensure_connection()`` of a wrapper whose store lends: borrow again first.

        Set as an instance attribute at the first checkout from such a store (base.py),
        never as a class override: code that patches ``BaseDatabaseWrapper.ensure_connection``
        and calls the method it saved before (Django's own tests do) must reach Django's.
        """
        if self.persistent_lent:
            self.persistent_borrow()
        super().ensure_connection()

    def persistent_close_if_health_check_failed(self):
        """``close_if_health_check_failed()`` (before every cursor) of a wrapper whose store
        lends: borrow again first (the store's probe is the check). Set per instance, like
        ``persistent_ensure_connection``: a wrapper that never lends pays nothing."""
        if self.persistent_lent:
            self.persistent_borrow()  # fresh from the store's probe
        super().close_if_health_check_failed()

    def _commit(self):
        if self.persistent_lent:
            self.persistent_borrow()
        return super()._commit()

    def _rollback(self):
        if self.persistent_lent:
            self.persistent_borrow()
        return super()._rollback()

    def set_autocommit(self, autocommit, force_begin_transaction_with_broken_autocommit=False):
        """The outermost ``atomic()`` ends here (after its ``on_commit`` hooks): lend."""
        super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)
        if autocommit:
            self.persistent_lend()
