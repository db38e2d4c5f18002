"""The request being served (its path, for leak warnings) and what it borrowed (``Lease``).

A context variable holds the current ``Request``; signals.py starts one on
``request_started`` and ends it on ``request_finished``. A ``Lease`` remembers which request
borrowed it, so a later request sees that it is stale without any per-request sweep, and
builds the dict ``current_connection_info()`` reports only when someone asks.
"""

import contextvars
import time

_current = contextvars.ContextVar("persistent_backend_request", default=None)


class Request:
    """The request a thread or task serves: its path, and whether it ended."""

    __slots__ = ("path", "ended")

    def __init__(self, path):
        self.path = path
        self.ended = False


def current_path():
    """The path of the request this thread/task is serving, or None outside requests."""
    request = _current.get()
    return None if request is None or request.ended else request.path


def current_request():
    """The request this thread/task serves or served last (None: none yet)."""
    return _current.get()


def start(path):
    """A request for ``path`` starts in this thread/task."""
    _current.set(Request(path))


def end():
    """The current request ended (its leases stay readable until the next one starts)."""
    request = _current.get()
    if request is not None:
        request.ended = True


class Lease:
    """A kept connection lent to the current unit of work: figures taken at checkout."""

    __slots__ = ("alias", "record", "reused", "uses", "mode", "path", "borrowed", "request")

    def __init__(self, alias, record, reused, mode):
        self.alias = alias
        self.record = record
        self.reused = reused
        self.uses = record.uses
        self.mode = mode
        self.path = current_path()  # the request that borrowed it, for leak warnings
        self.borrowed = time.monotonic()
        self.request = _current.get()

    def is_current(self):
        """Borrowed by the request this thread serves (or served last)?"""
        return self.request is _current.get()

    def as_dict(self):
        record = self.record
        return {
            "alias": self.alias,
            "reused": self.reused,
            "backend_pid": record.backend_pid,
            "age_seconds": round(self.borrowed - record.created, 3),
            "uses": self.uses,
            "mode": self.mode,
            "application_name": record.application_name,
            "path": self.path,
        }
