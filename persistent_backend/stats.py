"""Counters kept by each store, and the public ``stats()`` / ``current_connection_info()``.

Counters are plain attributes changed under the store's own lock (which checkout and
return take anyway); reading them copies them under that lock. No other lock, no I/O.
"""

import os
import time

RECONNECT_REASONS = ("terminated", "closed", "broken", "ping_failed", "fork")
RECYCLE_REASONS = ("age", "uses", "idle")
MAX_LEAK_PATHS = 100


class Counters:
    def __init__(self):
        self.opened = 0
        self.reuses = 0
        self.requests = 0
        self.reconnects = dict.fromkeys(RECONNECT_REASONS, 0)
        self.recycles = dict.fromkeys(RECYCLE_REASONS, 0)
        self.discards = {}
        self.closed = 0
        self.connect_failures = 0
        self.leaked_transactions = 0
        self.leaked_by_path = {}
        self.checkout_waits = 0
        self.checkout_wait_seconds = 0.0
        self.checkout_timeouts = 0
        self.pings = 0
        self.resets = 0
        self.connect_seconds = 0.0
        self.retried_statements = 0  # moved to a new connection before being sent
        self.retry_refusals = {}  # lost under a statement that could not move, by reason
        self.pinned = 0  # units of work pinned (session state), by kind below
        self.pinned_by_reason = {}
        self.pinned_resets = 0  # DISCARD ALL run because the unit of work was pinned

    def note_leak(self, path):
        """Count a leaked transaction; True if it is the first one from ``path``."""
        self.leaked_transactions += 1
        first = path not in self.leaked_by_path
        if first and len(self.leaked_by_path) >= MAX_LEAK_PATHS:
            path = "(other paths)"
        self.leaked_by_path[path] = self.leaked_by_path.get(path, 0) + 1
        return first

    def as_dict(self):
        return {
            "opened": self.opened,
            "reuses": self.reuses,
            "requests": self.requests,
            "reconnects": dict(self.reconnects),
            "recycles": dict(self.recycles),
            "discards": dict(self.discards),
            "closed": self.closed,
            "connect_failures": self.connect_failures,
            "leaked_transactions": self.leaked_transactions,
            "leaked_by_path": dict(self.leaked_by_path),
            "checkout_waits": self.checkout_waits,
            "checkout_wait_seconds": round(self.checkout_wait_seconds, 6),
            "checkout_timeouts": self.checkout_timeouts,
            "pings": self.pings,
            "resets": self.resets,
            "connect_seconds": round(self.connect_seconds, 6),
            "retried_statements": self.retried_statements,
            "retry_refusals": dict(self.retry_refusals),
            "pinned": self.pinned,
            "pinned_by_reason": dict(self.pinned_by_reason),
            "pinned_resets": self.pinned_resets,
        }


def stats():
    """``{alias: {...}}`` for every database of this process using ``persistent_backend``.

    A plain, JSON-serialisable dict; see the README for every key. An alias whose store
    was not created yet (no query so far) is reported with zero counters.
    """
    from django.db import connections

    from persistent_backend import registry
    from persistent_backend.base import DatabaseWrapper

    result = {}
    for alias in connections:
        wrapper = connections[alias]
        if not isinstance(wrapper, DatabaseWrapper):
            continue
        store = registry.store_for(wrapper, create=False)
        if store is None:
            store = registry.new_store(wrapper)  # not used yet: zeros, nothing registered
        result[alias] = store.snapshot()
    return result


def current_connection_info(alias="default"):
    """The connection the current request (thread) used for ``alias``, or None.

    ``{"reused", "age_seconds", "uses", "backend_pid", ...}``: kept after the connection
    went back to its store at the end of the request, cleared when the next one starts.
    """
    from django.db import connections

    from persistent_backend.base import DatabaseWrapper

    if alias not in connections:
        return None
    wrapper = connections[alias]
    if not isinstance(wrapper, DatabaseWrapper):
        return None
    info = wrapper.persistent_lease_info
    if info is None:
        return None
    record = wrapper.persistent_record
    now = time.monotonic()
    result = dict(info)
    result["pid"] = os.getpid()
    pinned = wrapper.persistent_pinned
    result["pinned"] = pinned.reason if pinned is not None else None
    if record is not None and record.backend_pid == info["backend_pid"]:
        result.update(age_seconds=round(record.age(now), 3), uses=record.uses, held=True)
    else:
        result["held"] = False
    return result
