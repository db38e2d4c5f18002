"""One PostgreSQL connection kept by a store: the driver handle plus its bookkeeping."""

import logging
import os
import random
import time

from persistent_backend.liveness import Checks

logger = logging.getLogger("persistent_backend")

# Handles inherited across fork() whose socket now points at /dev/null, by id(). Kept
# referenced forever: no driver call is ever made on them in the child (psycopg2's close()
# takes a mutex that another parent thread may have held at fork time), and the ids stay
# unique so a handle is neutralized once, never clobbering a later socket with its number.
_neutralized = {}


class Record:
    """A driver connection and what the store knows about it (all times: monotonic)."""

    __slots__ = (
        "raw",
        "store",
        "backend_pid",
        "application_name",
        "checks",
        "isolation_level",
        "owner_pid",
        "created",
        "expires",
        "last_used",
        "uses",
        "in_use",
        "slot",
        "holder",
        "__weakref__",
    )

    def __init__(
        self, raw, store, *, backend_pid, application_name, ssl, isolation_level, slot=None
    ):
        now = time.monotonic()
        self.raw = raw
        self.store = store
        self.backend_pid = backend_pid
        self.application_name = application_name
        self.checks = Checks(raw, ssl)  # probe() and in_transaction(), bound once (TLS or not)
        self.isolation_level = isolation_level
        self.owner_pid = os.getpid()
        self.created = now
        self.expires = expires_at(now, store.options.max_age, store.options.jitter)
        self.last_used = now
        self.uses = 0
        self.in_use = False
        self.slot = slot  # the Django connection object that opened it
        self.holder = None  # the one using it now (slot id), if in use

    def age(self, now=None):
        """Seconds since the connection was opened."""
        return (now or time.monotonic()) - self.created

    def idle_for(self, now=None):
        """Seconds since it went back to the store (0 while in use)."""
        return 0.0 if self.in_use else (now or time.monotonic()) - self.last_used

    def describe(self, now):
        """The connection as a dict for ``stats()`` and the dashboard."""
        return {
            "backend_pid": self.backend_pid,
            "age_seconds": round(self.age(now), 3),
            "uses": self.uses,
            "in_use": self.in_use,
            "idle_seconds": round(self.idle_for(now), 3),
            "expires_in_seconds": None
            if self.expires is None
            else round(max(0.0, self.expires - now), 3),
            "application_name": self.application_name,
        }

    def close(self):
        """Close cleanly (libpq sends Terminate) if this process opened it, else neutralize."""
        if self.owner_pid != os.getpid():
            neutralize(self.raw)
            return
        try:
            self.raw.close()
        except Exception as exc:
            logger.debug("closing backend %s failed: %s", self.backend_pid, exc)


def expires_at(now, max_age, jitter):
    """Recycle deadline: ``max_age`` scaled by a random factor in [1 - jitter, 1 + jitter]."""
    if max_age is None:
        return None
    return now + max_age * random.uniform(1.0 - jitter, 1.0 + jitter)


def neutralize(raw):
    """In a forked child: point the inherited socket at /dev/null, never touching the driver.

    The parent's TCP/unix connection stays intact: whatever the child's copy of libpq later
    writes (a Terminate message on dealloc, a query by mistake) goes to /dev/null, and
    reads see EOF, so a stray use fails cleanly instead of corrupting the parent's session.
    """
    if raw is None or id(raw) in _neutralized:
        return
    _neutralized[id(raw)] = raw
    try:
        fd = raw.fileno()
    except Exception:
        return
    if fd < 0:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def is_neutralized(raw):
    """Was this driver connection pointed at /dev/null after a fork (never to be used)?"""
    return id(raw) in _neutralized
