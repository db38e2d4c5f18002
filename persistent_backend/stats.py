"""The public ``stats()`` and ``current_connection_info()`` (the counters are counters.py)."""

import os
import time

from django.db import connections

from persistent_backend import registry
from persistent_backend.base import DatabaseWrapper


def stats():
    """``{alias: {...}}`` for every database of this process using ``persistent_backend``.

    A plain, JSON-serialisable dict; docs/backend.md ("Observing it") lists every key.
    An alias whose store was not created yet (no query so far) is reported with zero
    counters.
    """
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
    if alias not in connections:
        return None
    wrapper = connections[alias]
    if not isinstance(wrapper, DatabaseWrapper):
        return None
    lease = wrapper.persistent_lease
    if lease is None:
        return None
    record = wrapper.persistent_record
    result = lease.as_dict()
    if not lease.is_current():
        # Borrowed by an earlier request: only a connection still held (Django's test
        # client never returns them) is reported, as reused by this one.
        if record is None:
            return None
        result.update(reused=True, uses=record.uses)
    now = time.monotonic()
    result["pid"] = os.getpid()
    pinned = wrapper.persistent_pinned
    result["pinned"] = pinned.reason if pinned is not None else None
    result["lends"] = wrapper.persistent_lends  # lend "transaction": in this unit of work
    if record is not None and record.backend_pid == result["backend_pid"]:
        result.update(age_seconds=round(record.age(now), 3), uses=record.uses, held=True)
    else:
        result["held"] = False
    return result
