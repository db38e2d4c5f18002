"""The end of a unit of work: the connection goes back to its store as a new one would be.

Rolled back if a transaction was left open (counted and logged per path), reset with
``DISCARD ALL`` when the unit of work was pinned or ``reset`` is ``"discard"``, closed
when that cannot make it clean (a command still running, a pin that ``DISCARD ALL``
cannot undo, a reset that failed).
"""

import logging
import os

from persistent_backend import liveness, prepared
from persistent_backend.request_context import current_path

logger = logging.getLogger("persistent_backend")


class ReturnMixin:
    """The end of a unit of work: clean the connection, then give it back or close it."""

    def _release(self, record):
        store = record.store
        raw = self.connection
        keep = False
        try:
            if record.owner_pid != os.getpid():
                self._forget_inherited()
                return
            self._note_pin(store)
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
        checks = record.checks  # record.raw is raw: connect() and _detach() set both
        status = checks.status()
        if status is None:
            store.discard(record, reason="broken", detail="connection lost during the request")
            return False
        if self.errors_occurred:
            verdict = checks.probe()
            if not verdict.alive:
                store.discard(record, reason=verdict.reason or "broken", detail=verdict.detail)
                return False
        if status not in liveness.TRANSACTION_STATES_AT_REST:
            # A command still running (an unread result, a COPY): not worth untangling.
            store.discard(record, counter="busy")
            return False
        sent = False  # a ROLLBACK or a reset was sent: check the status it left
        if status != liveness.TRANSACTION_IDLE:
            self._note_leak(record, status)
            sent = True
            if not raw.autocommit:
                raw.rollback()
            if checks.transaction_status() != liveness.TRANSACTION_IDLE:
                with raw.cursor() as cursor:
                    cursor.execute("ROLLBACK")
        wanted = self.settings_dict["AUTOCOMMIT"]
        if raw.autocommit != wanted:
            raw.autocommit = wanted
        pinned = self.persistent_pinned
        if pinned is not None and pinned.drop:
            store.discard(record, counter="pinned")  # state DISCARD ALL cannot undo
            return False
        if pinned is not None or store.options.reset == "discard":
            sent = True
            self._reset_session(store, raw, pinned=pinned is not None)
        if sent and checks.transaction_status() != liveness.TRANSACTION_IDLE:
            store.discard(record, counter="reset_failed")
            return False
        return True

    def _reset_session(self, store, raw, pinned):
        """``DISCARD ALL``, then Django's own setup again (time zone, role): what a new
        connection would have. Both run in autocommit (DISCARD ALL refuses a transaction)."""
        autocommit = raw.autocommit
        if not autocommit:
            raw.autocommit = True
        prepared.discard_all(raw)  # psycopg 3 is told its prepared statements are gone
        self._configure_connection(raw)
        if not autocommit:
            raw.autocommit = False
        store.count("resets")
        if pinned:
            store.count("pinned_resets")

    def _note_pin(self, store):
        pinned = self.persistent_pinned
        if pinned is not None:
            kind = pinned.reason.split(":", 1)[0]  # "unclassified: DO" -> "unclassified"
            store.count("pinned")
            store.count("pinned_by_reason", kind)

    def _note_leak(self, record, status):
        info = self.persistent_lease_info or {}
        path = info.get("path") or current_path() or "(outside a request)"
        store = record.store
        first = store.note_leak(path)
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
        self.persistent_pinned = None
