"""The counters each store keeps: declared once, as the fields of ``Counters``.

Plain attributes changed under the store's own lock (which checkout and return take
anyway); ``Store.snapshot()`` copies them under that lock. No other lock, no I/O.
"""

from dataclasses import dataclass, field, fields

RECONNECT_REASONS = ("terminated", "closed", "broken", "ping_failed", "fork")
RECYCLE_REASONS = ("age", "uses", "idle")
MAX_LEAK_PATHS = 100


def _zeros(keys):
    return field(default_factory=lambda: dict.fromkeys(keys, 0))


@dataclass
class Counters:
    """Adding a counter is adding a field: ``as_dict()`` lists every field in this order."""

    opened: int = 0
    reuses: int = 0
    requests: int = 0
    reconnects: dict = _zeros(RECONNECT_REASONS)
    recycles: dict = _zeros(RECYCLE_REASONS)
    discards: dict = field(default_factory=dict)
    closed: int = 0
    connect_failures: int = 0
    leaked_transactions: int = 0
    leaked_by_path: dict = field(default_factory=dict)
    checkout_waits: int = 0
    checkout_wait_seconds: float = 0.0
    checkout_timeouts: int = 0
    pings: int = 0
    resets: int = 0
    connect_seconds: float = 0.0
    retried_statements: int = 0  # moved to a new connection before being sent
    retry_refusals: dict = field(default_factory=dict)  # lost under a statement, by reason
    pinned: int = 0  # units of work pinned (session state), by kind below
    pinned_by_reason: dict = field(default_factory=dict)
    pinned_resets: int = 0  # DISCARD ALL run because the unit of work was pinned
    lends: int = 0  # lend "transaction": returned between two transactions of a request
    borrows: int = 0  # ... and taken again by the same request (not counted in requests)

    def add(self, name, key=None, amount=1):
        """Add ``amount`` to counter ``name`` (to its entry ``key`` for a counter by reason)."""
        if key is None:
            setattr(self, name, getattr(self, name) + amount)
        else:
            by_key = getattr(self, name)
            by_key[key] = by_key.get(key, 0) + amount

    def note_leak(self, path):
        """Count a leaked transaction; True if it is the first one from ``path``."""
        self.leaked_transactions += 1
        first = path not in self.leaked_by_path
        if first and len(self.leaked_by_path) >= MAX_LEAK_PATHS:
            path = "(other paths)"
        self.add("leaked_by_path", path)
        return first

    def as_dict(self):
        """A copy for ``stats()``: dicts copied, seconds rounded to the microsecond."""
        result = {}
        for counter in fields(self):
            value = getattr(self, counter.name)
            if isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, float):
                value = round(value, 6)
            result[counter.name] = value
        return result
