"""The ENGINE: Django's PostgreSQL backend whose connections outlive requests.

Django calls ``close_if_unusable_or_obsolete()`` on ``request_started`` and
``request_finished``; here that returns the connection to its store (after rolling back a
leaked transaction and, with ``reset: "discard"``, ``DISCARD ALL``) instead of closing it.
The first query of the next request calls ``connect()``, which borrows a kept connection
after a zero-round-trip liveness probe, or opens one with Django's own ``connect()``.
An explicit ``close()`` still closes for real.
"""

import logging
import os
import time
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.utils.asyncio import async_unsafe
from django.utils.functional import cached_property

from persistent_backend import liveness, pgbouncer, registry
from persistent_backend.cursors import PersistentCursorDebugWrapper, PersistentCursorWrapper
from persistent_backend.options import KEEPALIVE_DEFAULTS, Options, application_name
from persistent_backend.record import Record, is_neutralized, neutralize
from persistent_backend.request_context import current_path

logger = logging.getLogger("persistent_backend")


class DatabaseWrapper(base.DatabaseWrapper):
    is_psycopg3 = is_psycopg3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.persistent_record = None  # the kept connection this object holds, if any
        self.persistent_lease_info = None  # what current_connection_info() reports
        self._connection_pid = None
        self._forked_from = None  # pid that opened a connection this child dropped
        self._application_name = None
        self._slot = registry.track_wrapper(self)
        pgbouncer.configure(self.settings_dict)  # behind PgBouncer: no server-side cursors

    # -- connection parameters ----------------------------------------------------------
    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop("persistent", None)
        if params.pop("pool", None):
            raise ImproperlyConfigured(
                'persistent_backend keeps connections itself: remove OPTIONS["pool"] '
                '(use OPTIONS["persistent"]["mode"] = "pool")'
            )
        options = Options.from_settings(self.settings_dict)
        pgbouncer.check_connection_params(self.settings_dict)
        params["application_name"] = application_name(
            options.application_name, os.getpid(), host=options.hostname
        )
        self._application_name = params["application_name"]
        for key, value in KEEPALIVE_DEFAULTS.items():
            params.setdefault(key, value)
        return params

    def persistent_store(self, create=True):
        return registry.store_for(self, create=create)

    # -- borrowing ----------------------------------------------------------------------
    @async_unsafe
    def connect(self):
        store = self.persistent_store()
        if store is None:
            super().connect()
            self._connection_pid = os.getpid()
            return
        if self._forked_from is not None:
            with store.cond:
                store.counters.reconnects["fork"] += 1
            logger.info(
                "pid %d: not using the connection to '%s' inherited from pid %s (fork)",
                os.getpid(),
                self.alias,
                self._forked_from,
            )
            self._forked_from = None
        record = store.acquire(self._slot)
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
            store.opened(record, in_use=True, connect_seconds=time.monotonic() - started)
            store.server_version = self.connection.info.server_version
            if not store.budget_checked:
                store.budget_checked = True
                from persistent_backend.checks import log_runtime_checks

                log_runtime_checks(self, store)
        else:
            self._adopt(record)
        self.persistent_record = record
        self._connection_pid = record.owner_pid
        self.persistent_lease_info = {
            "alias": self.alias,
            "reused": reused,
            "backend_pid": record.backend_pid,
            "age_seconds": round(record.age(), 3),
            "uses": record.uses,
            "mode": store.mode,
            "application_name": record.application_name,
            "path": current_path(),  # the request that borrowed it, for leak warnings
        }

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
        record = self.persistent_record
        if record is None or self.connection is None:
            return super().close_if_unusable_or_obsolete()
        if self.in_atomic_block:
            return  # not a request boundary (e.g. called from inside transaction.atomic)
        self._release(record)

    def _release(self, record):
        store = record.store
        raw = self.connection
        keep = False
        try:
            if record.owner_pid != os.getpid():
                self._forget_inherited()
                return
            keep = self._clean(record, raw)
        except Exception as exc:
            logger.warning(
                "could not clean connection to '%s' (backend %s) at the end of %s: %s",
                self.alias,
                record.backend_pid,
                current_path() or "a unit of work",
                exc,
            )
            keep = False
            store.discard(record, counter="reset_failed")
        finally:
            self._detach()
        if keep:
            recycled = store.checkin(record)
            if recycled and store.options.reopen:
                self._reopen(store)

    def _clean(self, record, raw):
        """Leave the connection as a new one would be; False if it must be dropped."""
        store = record.store
        if not liveness.status_ok(raw):
            store.discard(record, reason="broken", detail="connection lost during the request")
            return False
        if self.errors_occurred:
            verdict = liveness.probe(raw, record.ssl)
            if not verdict.alive:
                store.discard(record, reason=verdict.reason or "broken", detail=verdict.detail)
                return False
        wanted = self.settings_dict["AUTOCOMMIT"]
        status = liveness.transaction_status(raw)
        if status not in liveness.TRANSACTION_STATES_AT_REST:
            # A command still running (an unread result, a COPY): not worth untangling.
            store.discard(record, counter="busy")
            return False
        if status != liveness.TRANSACTION_IDLE:
            self._note_leak(record, status)
            if not raw.autocommit:
                raw.rollback()
            if liveness.transaction_status(raw) != liveness.TRANSACTION_IDLE:
                with raw.cursor() as cursor:
                    cursor.execute("ROLLBACK")
        if raw.autocommit != wanted:
            raw.autocommit = wanted
        if store.options.reset == "discard":
            with raw.cursor() as cursor:
                cursor.execute("DISCARD ALL")
            # DISCARD ALL resets the time zone and role Django set up: set them again.
            if self._configure_connection(raw) and not raw.autocommit:
                raw.commit()
            with store.cond:
                store.counters.resets += 1
        if liveness.transaction_status(raw) != liveness.TRANSACTION_IDLE:
            store.discard(record, counter="reset_failed")
            return False
        return True

    def _note_leak(self, record, status):
        info = self.persistent_lease_info or {}
        path = info.get("path") or current_path() or "(outside a request)"
        store = record.store
        with store.cond:
            first = store.counters.note_leak(path)
        aborted = status == liveness.TRANSACTION_INERROR
        state = "idle in transaction (aborted)" if aborted else "idle in transaction"
        message = (
            "rolled back a transaction left open by %s (database '%s', backend %s was %s); "
            "commit or roll back inside the request, e.g. with transaction.atomic()"
        )
        if first:
            logger.warning(
                message + ". Further leaks from this path are only counted in "
                "persistent_backend.stats()['%s']['leaked_by_path'].",
                path,
                self.alias,
                record.backend_pid,
                state,
                self.alias,
            )
        else:
            logger.debug(message, path, self.alias, record.backend_pid, state)

    def _reopen(self, store):
        """After a recycle: open the replacement now, so the next request does not wait."""
        if not store.reserve():
            return
        try:
            super().connect()
            record = self._new_record(store)
        except Exception as exc:
            store.open_failed()
            logger.info("could not reopen a connection to '%s': %s", self.alias, exc)
            self._drop_half_open()
            self._detach()
            return
        store.opened(record, in_use=False)
        self._detach()

    def _detach(self):
        self.connection = None
        self.persistent_record = None
        self._connection_pid = None
        self.in_atomic_block = False
        self.needs_rollback = False
        self.run_on_commit = []

    # -- closing for real ---------------------------------------------------------------
    def _close(self):
        record = self.persistent_record
        if self.connection is not None and self._connection_pid not in (None, os.getpid()):
            self._forget_inherited()
            return
        if record is None:
            return super()._close()
        self.persistent_record = None
        record.store.discard(record)

    def close(self):
        """Close this connection and the store's idle ones (``connections.close_all()``)."""
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

        Inside an atomic block the handle stays attached but neutralized: the parent's
        transaction cannot continue in the child, so its queries fail cleanly.
        """
        if self.connection is None:
            return
        if self.in_atomic_block:
            neutralize(self.connection)
        else:
            self._forget_inherited()

    @async_unsafe
    def create_cursor(self, name=None):
        if self.connection is not None and self._connection_pid not in (None, os.getpid()):
            # A fork() that skipped Python's at-fork hooks: drop the parent's connection.
            self._forget_inherited()
            self.connect()
        return super().create_cursor(name)

    @contextmanager
    def temporary_connection(self):
        """Like Django's, but a kept connection goes back to its store instead of closing."""
        must_return = self.connection is None
        try:
            with self.cursor() as cursor:
                yield cursor
        finally:
            if must_return:
                record = self.persistent_record
                if record is not None and self.connection is not None:
                    if not self.in_atomic_block:
                        self._release(record)
                else:
                    self.close()

    @cached_property
    def pg_version(self):
        """The server version, known to the store: no checkout for a new thread's wrapper."""
        store = self.persistent_store()
        if store is not None and store.server_version:
            return store.server_version
        with self.temporary_connection():
            return self.connection.info.server_version

    # -- statements that survive a lost connection (cursors.py) -------------------------
    def make_cursor(self, cursor):
        return PersistentCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return PersistentCursorDebugWrapper(cursor, self)

    def persistent_may_retry(self, raw_cursor):
        """May a statement on ``raw_cursor`` move to another connection (no I/O)?"""
        record = self.persistent_record
        raw = self.connection
        return (
            record is not None
            and raw is not None
            and record.raw is raw
            and record.store.options.retry
            and not self.in_atomic_block
            and self.autocommit
            and getattr(raw_cursor, "name", None) is None
            and liveness.transaction_status(raw) == liveness.TRANSACTION_IDLE
        )

    def persistent_probe(self):
        """The checkout probe, before a write is sent (zero round trip)."""
        return liveness.probe(self.connection, self.persistent_record.ssl)

    def persistent_connection_lost(self):
        raw = self.connection
        return raw is not None and not liveness.status_ok(raw)

    def persistent_replace(self, cursor_wrapper, reason, detail, sent):
        """Drop the dead connection, take another, and point ``cursor_wrapper`` at it."""
        record = self.persistent_record
        store = record.store
        store.discard(record, reason=reason or "closed", detail=detail)
        self._detach()
        with store.cond:
            store.counters.retried_statements += 1
        logger.info(
            "%s on another connection to '%s' (%s)",
            "retrying a read" if sent else "sending a statement",
            self.alias,
            current_path() or "outside a request",
        )
        self.ensure_connection()
        cursor_wrapper.cursor = self.create_cursor()

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
        return liveness.probe(raw, record.ssl if record else liveness.ssl_in_use(raw)).alive
