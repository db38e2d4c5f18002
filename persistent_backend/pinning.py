"""Pinning: a unit of work whose session carries state never changes connection silently.

A unit of work (a request, or what runs between two ``close_old_connections()``) is
*pinned* once it sent a statement that leaves state on its session (``sessionstate.py``)
or called ``persistent_backend.pin()``. From then on:

* no statement moves to another connection: if the server ends the session, the next
  statement fails exactly as with Django's backend (the site's 503 page) and the dead
  connection is dropped at the end of the unit of work; the next one works;
* at the end of the unit of work the connection is reset with ``DISCARD ALL`` (then
  Django's own setup: time zone, role) before it goes back to its store, whatever
  ``reset`` says, or closed when ``DISCARD ALL`` cannot undo the state (``LISTEN``,
  ``LOAD``, ``dblink``, statements that could not be classified).

``DatabaseWrapper`` gets the statement hooks ``cursors.RetryMixin`` calls from here.
"""

import logging
from dataclasses import dataclass

from persistent_backend import liveness, sessionstate
from persistent_backend.cursors import RETRIES
from persistent_backend.request_context import current_path

logger = logging.getLogger("persistent_backend")

REFUSALS = {
    "sent": "it was already sent: the server may have run it",
    "transaction": "a transaction was open: it ended with the session",
    "server_side_cursor": "a server-side cursor lives on the old session",
    "pinned": "the unit of work is pinned: its session state is gone",
    "disabled": 'OPTIONS["persistent"]["retry"] is False',
}


@dataclass(frozen=True)
class Pin:
    """Why a unit of work is pinned, and whether its connection must be closed, not reset."""

    reason: str
    drop: bool = False  # close the connection at the end instead of DISCARD ALL


class Pinned:
    """What ``pin()`` returns; usable as a context manager for readability only: the pin
    lasts until the unit of work ends, since the state the block created does too."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def __enter__(self):
        return self.wrapper

    def __exit__(self, *exc_info):
        return False


def pin(using=None, drop=False):
    """Pin the current unit of work's connection to database ``using`` (default alias).

    Call it before (or right after) setting session state the backend cannot see, e.g.
    inside a function: its connection is never replaced under it, and at the end it is
    reset with ``DISCARD ALL`` (``drop=True``: closed). A no-op for other ENGINEs.
    """
    from django.db import DEFAULT_DB_ALIAS, connections

    wrapper = connections[using or DEFAULT_DB_ALIAS]
    if isinstance(wrapper, SessionMixin):
        wrapper.persistent_pin("pin()", drop=drop)
    return Pinned(wrapper)


class SessionMixin:
    """The DatabaseWrapper's side of pinning and of the move-before-sending rule."""

    persistent_pinned = None  # a Pin while the unit of work is pinned

    def persistent_pin(self, reason, drop=False):
        """Pin this unit of work (the first reason is kept; ``drop`` only ever gets stricter)."""
        pinned = self.persistent_pinned
        if pinned is None:
            self.persistent_pinned = Pin(reason, drop)
            logger.debug("'%s' pinned (%s) in %s", self.alias, reason, current_path())
        elif drop and not pinned.drop:
            self.persistent_pinned = Pin(pinned.reason, True)

    def persistent_before_statement(self, cursor_wrapper, sql):
        """Before sending: move a dead connection if allowed, note session state.

        Returns why the statement could not move if its connection is lost (None: it
        could, and was probed)."""
        if self.persistent_lending:
            self.persistent_bind(cursor_wrapper)  # lending.py: borrow, never the lent one
        record = self.persistent_record
        if record is None or record.raw is not self.connection:
            return None  # not a kept connection: Django's behaviour, nothing to count
        checks = record.checks
        # One read of libpq's state: IDLE is no transaction and (libpq answers UNKNOWN for
        # a connection it reports as bad) a usable connection, so a probe needs only the
        # socket after it.
        in_transaction = (
            self.in_atomic_block
            or not self.autocommit
            or checks.transaction_status() != liveness.TRANSACTION_IDLE
        )
        # Why the statement could not move if its connection were lost (None: it can).
        if not record.store.options.retry:
            refusal = "disabled"
        elif in_transaction:
            refusal = "transaction"
        elif getattr(cursor_wrapper.cursor, "name", None) is not None:
            refusal = "server_side_cursor"
        elif self.persistent_pinned is not None:
            refusal = "pinned"
        else:
            refusal = None
            if not checks.socket_quiet():
                self._persistent_move_if_dead(cursor_wrapper)  # probe() decides
        if type(sql) is str:
            effect = sessionstate.cached((sql, in_transaction)) or sessionstate.classify(
                sql, in_transaction
            )
        else:
            text = sessionstate.text_of(sql, self.connection)
            if text is None:
                effect = sessionstate.Effect("unclassified: composed SQL", drop=True)
            else:
                effect = sessionstate.classify(text, in_transaction)
        if effect.reason:
            self.persistent_pin(effect.reason, drop=effect.drop)
        return refusal

    def _persistent_move_if_dead(self, cursor_wrapper):
        for _ in range(RETRIES):
            verdict = self.persistent_record.checks.probe()
            if verdict.alive:
                return
            self._persistent_replace(cursor_wrapper, verdict)

    def _persistent_replace(self, cursor_wrapper, verdict):
        """Drop the dead connection, take another, and point ``cursor_wrapper`` at it."""
        record = self.persistent_record
        store = record.store
        store.discard(record, reason=verdict.reason or "closed", detail=verdict.detail)
        self._detach()
        store.count("retried_statements")
        logger.info(
            "sending a statement on another connection to '%s' (%s): the previous one "
            "was lost before it was sent",
            self.alias,
            current_path() or "outside a request",
        )
        self.persistent_rebind(cursor_wrapper)

    def persistent_rebind(self, cursor_wrapper):
        """Point ``cursor_wrapper`` at a new driver cursor on the connection this unit of
        work holds now (taking one if needed): for a statement not sent yet."""
        self.ensure_connection()
        cursor_wrapper.cursor = self.create_cursor()

    def persistent_statement_failed(self, refusal):
        """A statement failed: if its connection was lost, count why it was not moved."""
        record = self.persistent_record
        if record is None or not self.persistent_connection_lost():
            return
        reason = refusal or "sent"
        record.store.count("retry_refusals", reason)
        logger.info(
            "connection to '%s' lost under a statement (%s); not sent again: %s",
            self.alias,
            current_path() or "outside a request",
            REFUSALS[reason],
        )

    def persistent_connection_lost(self):
        """Did libpq see the connection end (a failed statement's cause)?"""
        raw = self.connection
        return raw is not None and not liveness.status_ok(raw)
