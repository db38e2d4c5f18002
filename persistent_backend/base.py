"""The ENGINE: Django's PostgreSQL backend whose connections outlive requests.

Django calls ``close_if_unusable_or_obsolete()`` on ``request_started`` and
``request_finished``; here that returns the connection to its store (after rolling back a
leaked transaction and, for a pinned unit of work or with ``reset: "discard"``,
``DISCARD ALL``: returning.py) instead of closing it.
The first query of the next request calls ``connect()``, which borrows a kept connection
after a zero-round-trip liveness probe, or opens one with Django's own ``connect()``.
An explicit ``close()`` still closes for real. Statements go through cursors.py and
pinning.py (move only what was never sent; pin session state). See docs/guarantees.md.
"""

import logging
import os
import time
from asyncio import _get_running_loop
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.utils.functional import cached_property

from persistent_backend import deployment, liveness, pgbouncer, prepared, registry
from persistent_backend.cursors import (
    LendingCursorDebugWrapper,
    LendingCursorWrapper,
    PersistentCursorDebugWrapper,
    PersistentCursorWrapper,
)
from persistent_backend.lending import LendingMixin
from persistent_backend.options import KEEPALIVE_DEFAULTS, Options
from persistent_backend.pinning import SessionMixin
from persistent_backend.record import Record, is_neutralized, neutralize
from persistent_backend.request_context import Lease
from persistent_backend.returning import ReturnMixin

logger = logging.getLogger("persistent_backend")


def refuse_async_context():
    """Django's ``async_unsafe`` check (same condition, same error) without its cost.

    Django's asks ``asyncio.get_running_loop()``, which raises ``RuntimeError`` in the usual,
    synchronous case: an exception per call, per statement for ``create_cursor()``. This
    asks ``asyncio._get_running_loop()`` (None when no loop runs) instead."""
    if _get_running_loop() is not None and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        raise SynchronousOnlyOperation(
            "You cannot call this from an async context - use a thread or sync_to_async."
        )


# Django's create_cursor() without its async_unsafe wrapper (the check is made cheaply).
_django_create_cursor = getattr(
    base.DatabaseWrapper.create_cursor, "__wrapped__", base.DatabaseWrapper.create_cursor
)


class DatabaseWrapper(LendingMixin, ReturnMixin, SessionMixin, base.DatabaseWrapper):
    """Django's PostgreSQL wrapper whose connections go back to a store instead of closing."""

    is_psycopg3 = is_psycopg3
    features_class = prepared.DatabaseFeatures

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.persistent_record = None  # the kept connection this object holds, if any
        self.persistent_lease = None  # the last checkout's Lease (current_connection_info())
        self._connection_pid = None
        self._forked_from = None  # pid that opened a connection this child dropped
        self._application_name = None
        self._slot = registry.track_wrapper(self)
        pgbouncer.configure(self.settings_dict)  # behind PgBouncer: no server-side cursors

    # -- connection parameters ----------------------------------------------------------
    @property
    def pool(self):
        """Never Django's own pool: this ENGINE keeps connections itself."""
        return None

    def get_connection_params(self):
        """Django's parameters plus application_name (``prefix:host:pid``) and keepalive
        defaults."""
        # Before Django's, which pops "pool" (and would leave it unseen): no connection
        # and no pool is made with it.
        if self.settings_dict["OPTIONS"].get("pool"):
            raise ImproperlyConfigured(
                'persistent_backend keeps connections itself: remove OPTIONS["pool"] '
                '(use OPTIONS["persistent"]["mode"] = "pool")'
            )
        params = super().get_connection_params()
        params.pop("persistent", None)
        options = Options.from_settings(self.settings_dict)
        pgbouncer.check_connection_params(self.settings_dict)
        prepared.connection_params(params, self.settings_dict, options)
        params["application_name"] = deployment.application_name(
            options.application_name, os.getpid(), host=options.hostname
        )
        self._application_name = params["application_name"]
        for key, value in KEEPALIVE_DEFAULTS.items():
            params.setdefault(key, value)
        return params

    def persistent_store(self, create=True):
        """This wrapper's store (registry.py); None when the settings keep no connections."""
        return registry.store_for(self, create=create)

    # -- borrowing ----------------------------------------------------------------------
    def connect(self):
        """Borrow a kept connection (probed, no round trip) or open one with Django's
        ``connect()``. Refused in an async context, as Django's is."""
        refuse_async_context()
        # lending.py: a unit of work that lent its connection borrows from the same store
        store = self.persistent_borrowing or self.persistent_store()
        if store is None:
            super().connect()
            self._connection_pid = os.getpid()
            return
        if self._forked_from is not None:
            store.count("reconnects", "fork")
            logger.info(
                "pid %d: not using the connection to '%s' inherited from pid %s (fork)",
                os.getpid(),
                self.alias,
                self._forked_from,
            )
            self._forked_from = None
        borrow = self.persistent_borrowing is not None
        if not borrow:
            self.persistent_lends = 0
        record = store.acquire(self._slot, borrow=borrow)
        reused = record is not None
        if record is None:
            started = time.monotonic()
            try:
                super().connect()
                record = self._new_record(store)
            except BaseException:
                store.open_failed()
                self._drop_half_open()
                raise
            store.opened(
                record, in_use=True, connect_seconds=time.monotonic() - started, borrow=borrow
            )
            store.server_version = self.connection.info.server_version
            if store.first_connection():
                from persistent_backend.checks import log_runtime_checks

                log_runtime_checks(self, store)
        else:
            self._adopt(record)
        self.persistent_record = record
        self.persistent_lending = store.lends_per_transaction
        if self.persistent_lending and "ensure_connection" not in self.__dict__:
            # lending.py: Django's entry points borrow again first
            self.ensure_connection = self.persistent_ensure_connection
            self.close_if_health_check_failed = self.persistent_close_if_health_check_failed
        self._connection_pid = record.owner_pid
        if borrow and self.persistent_lease is not None:
            self.persistent_lease.record = record  # the unit of work's lease follows it
        else:
            self.persistent_lease = Lease(self.alias, record, reused, store.mode)

    @property
    def persistent_lease_info(self):
        """The last checkout as a dict (built when read: nothing per request)."""
        lease = self.persistent_lease
        return None if lease is None else lease.as_dict()

    def _drop_half_open(self):
        """Connected, but Django's setup (autocommit, time zone, role) failed: close it."""
        raw, self.connection = self.connection, None
        if raw is not None:
            try:
                raw.close()
            except Exception:
                pass

    def _new_record(self, store):
        raw = self.connection
        return Record(
            raw,
            store,
            backend_pid=raw.info.backend_pid,
            application_name=self._application_name,
            ssl=liveness.ssl_in_use(raw),
            isolation_level=self.isolation_level,
            slot=self._slot,
        )

    def _adopt(self, record):
        """Django's connect() bookkeeping for a kept connection: no I/O, no signal."""
        self.check_settings()
        self.in_atomic_block = False
        self.savepoint_ids = []
        self.atomic_blocks = []
        self.needs_rollback = False
        self.health_check_enabled = self.settings_dict["CONN_HEALTH_CHECKS"]
        self.health_check_done = True  # just probed
        self.close_at = None
        self.closed_in_transaction = False
        self.errors_occurred = False
        self.connection = record.raw
        self.isolation_level = record.isolation_level
        autocommit = self.settings_dict["AUTOCOMMIT"]
        if record.raw.autocommit != autocommit:
            self._set_autocommit(autocommit)
        self.autocommit = autocommit
        self.run_on_commit = []

    # -- returning ----------------------------------------------------------------------
    def close_if_unusable_or_obsolete(self):
        """Request boundary: give the connection back to its store (never mid-transaction)."""
        if self.persistent_lent or self.persistent_held is not None:
            self.persistent_end_lending()
        record = self.persistent_record
        if record is None or self.connection is None:
            if not self.in_atomic_block:
                self.persistent_pinned = None  # pin() in a unit of work that sent nothing
            return super().close_if_unusable_or_obsolete()
        if self.in_atomic_block:
            return  # not a request boundary (e.g. called from inside transaction.atomic)
        self._release(record)

    # -- closing for real ---------------------------------------------------------------
    def _close(self):
        record = self.persistent_record
        if self.connection is not None and self._connection_pid not in (None, os.getpid()):
            self._forget_inherited()
            return
        self.persistent_pinned = None
        if record is None:
            return super()._close()
        self.persistent_record = None
        record.store.discard(record)

    def close(self):
        """Close this connection and the store's idle ones: Django's ``close_all()`` (before
        fork, in management commands) calls ``close()`` on this thread's objects only, and
        idle kept connections belong to no thread (docs/guarantees.md)."""
        if self.persistent_lent or self.persistent_held is not None:
            self.persistent_end_lending()
        super().close()
        store = self.persistent_store(create=False)
        if store is not None:
            store.close_idle()

    def _forget_inherited(self):
        """A connection opened by the parent before fork(): never use it, never close it.

        Its socket is pointed at /dev/null (nothing can reach the parent's session) and the
        driver object is kept referenced, never closed (see record.neutralize).
        """
        if self.connection is not None:
            neutralize(self.connection)
            self._forked_from = self._connection_pid
        self._detach()

    def after_fork_in_child(self):
        """Called in a forked child (os.register_at_fork): drop what the parent held.

        Inside an atomic block or a pinned unit of work the handle stays attached but
        neutralized: the parent's transaction or session state cannot continue in the
        child, so its queries fail cleanly instead of running on a new session.
        """
        if self.persistent_lent:
            self.persistent_end_lending()  # lent: nothing of the parent's is held
            return
        if self.connection is None:
            return
        if self._bound_to_its_session():
            neutralize(self.connection)
        else:
            self._forget_inherited()

    def _bound_to_its_session(self):
        return self.in_atomic_block or self.persistent_pinned is not None

    def create_cursor(self, name=None):
        """Django's cursor; a named (server-side) one pins the unit of work.

        Django's own is ``async_unsafe``; it is called without that wrapper, after the same
        check made without an exception per statement (``refuse_async_context``)."""
        refuse_async_context()
        if self.connection is not None and self._connection_pid not in (None, os.getpid()):
            # A fork() that skipped Python's at-fork hooks, or a transaction / pinned unit
            # of work inherited from the parent (whose statements must fail).
            if self._bound_to_its_session():
                neutralize(self.connection)
            else:
                self._forget_inherited()
                self.connect()
        cursor = _django_create_cursor(self, name)
        if name is not None:
            self.persistent_pin("server_side_cursor")  # WITH HOLD outside a transaction
        return cursor

    @contextmanager
    def temporary_connection(self):
        """Like Django's, but a kept connection goes back to its store instead of closing."""
        lent = self.persistent_lent
        must_return = lent or self.connection is None
        try:
            with self.cursor() as cursor:
                yield cursor
        finally:
            if must_return:
                record = self.persistent_record
                if record is not None and self.connection is not None:
                    if lent:
                        self.persistent_lend()  # lent before: lent again, if at rest
                    elif not self.in_atomic_block:
                        self._release(record)
                elif not self.persistent_lent:  # lent after its statement: nothing held
                    self.close()

    def make_cursor(self, cursor):
        """Django's cursor wrapper with the move-before-sending rule (cursors.py); one that
        lends after each statement if the store lends per transaction (lending.py)."""
        if self.persistent_lending:
            return LendingCursorWrapper(cursor, self)
        return PersistentCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        """The same for ``DEBUG`` (queries logged)."""
        if self.persistent_lending:
            return LendingCursorDebugWrapper(cursor, self)
        return PersistentCursorDebugWrapper(cursor, self)

    @cached_property
    def pg_version(self):
        """The server version, known to the store: no checkout for a new thread's wrapper."""
        store = self.persistent_store()
        if store is not None and store.server_version:
            return store.server_version
        with self.temporary_connection():
            return self.connection.info.server_version

    # -- zero-round-trip health -------------------------------------------------------
    def is_usable(self):
        """Would a query work? Django's asks the server (SELECT 1); this asks libpq and
        the socket. Like Django's, an aborted transaction counts as unusable."""
        raw = self.connection
        if raw is None or is_neutralized(raw):
            return False
        if liveness.transaction_status(raw) == liveness.TRANSACTION_INERROR:
            return False
        record = self.persistent_record
        if record is not None and record.raw is raw:
            return record.checks.probe().alive
        return liveness.probe(raw, liveness.ssl_in_use(raw)).alive
