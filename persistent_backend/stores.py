"""Where connections wait between requests: one store per database alias and process.

* ``pool``: a bounded LIFO list shared by the threads of the process; a request that finds
  every connection busy and the pool full waits up to ``checkout_timeout``, in line
  (``Waiter``). A returned connection goes idle and wakes the oldest waiter, unless one
  woken earlier has not run yet (a checkout that finds more idle connections than it
  needs wakes the next). Under the GIL the returning thread often takes the connection
  again before the woken one runs: that waiter keeps its place, and the next connection
  returned is handed to it directly. Handing every return over would make each statement
  of a lending request wait its turn; waking every waiter spends the CPU on threads that
  find nothing.
* ``process``: the same with one connection, so even a threaded server never lets two
  threads use it at once (the second waits; a system check reports the misconfiguration).
* ``thread``: one connection per thread (per Django connection object), unbounded.

The store never talks to Django: the database wrapper opens connections (Django's own
``connect()``), the store lends, takes back, recycles and closes them. All bookkeeping
happens under the store's one lock; connections are closed and probed outside it.

Over 400 lines on purpose: ``Store`` is one class around one private lock, and every
method that takes it keeps the same invariants (records, idle, opening, counters); split
over modules, those invariants would be too (psycopg_pool keeps its pool in one module).
"""

import logging
import os
import threading
import time
from collections import deque

from django.db.utils import OperationalError

from persistent_backend import environment, liveness
from persistent_backend.counters import Counters

logger = logging.getLogger("persistent_backend")


class CheckoutTimeout(OperationalError):
    """No connection became free within ``checkout_timeout`` (shown as a 503 by the site)."""


class Wait:
    """One checkout's deadline, set when it first has to wait (shared by its rounds)."""

    __slots__ = ("deadline",)

    def __init__(self):
        self.deadline = None


class Waiter:
    """A checkout in line for a connection, woken once by the store (under its lock) when a
    connection went idle, a place to open one was freed, or (``hungry``: it was woken
    before and found nothing) with a connection handed over (``record``)."""

    __slots__ = ("_signal", "woken", "hungry", "record")

    def __init__(self, hungry):
        self._signal = threading.Lock()
        self._signal.acquire()
        self.woken = False
        self.hungry = hungry
        self.record = None

    def wake(self, record=None):
        self.woken = True
        self.record = record
        self._signal.release()

    def wait(self, timeout):
        self._signal.acquire(timeout=timeout)


class Store:
    """One alias's kept connections in one process, behind one private lock (see the module)."""

    def __init__(self, alias, key, options, mode, max_size, shape, mode_reason, is_psycopg3):
        self.alias = alias
        self.key = key
        self.options = options
        self.mode = mode
        self.mode_reason = mode_reason
        self.shape = shape
        self.is_psycopg3 = is_psycopg3
        self.max_size = {"process": 1, "pool": max_size}.get(mode)
        # lend "transaction" changes pool mode only: in process and thread modes the
        # connection is the process's or the thread's anyway (lending.py), and in a daemon
        # of one thread no other request could borrow it between two statements.
        self.lend = options.lend if mode == "pool" and shape.threads != 1 else "request"
        self.lends_per_transaction = self.lend == "transaction"
        self.housekeeping = environment.housekeeping_interval(options, shape)
        self.owner_pid = os.getpid()
        self.created = time.monotonic()
        # One private lock. Plain ``with self._lock`` (a C-level context manager) on the
        # hot path; checkouts that wait queue up in ``_waiters`` (oldest first).
        self._lock = threading.Lock()
        self._waiters = deque()
        self._woken = 0  # waiters woken that have not taken the lock again yet
        self.records = set()  # every open connection of this store
        self.idle = []  # pool/process: idle connections, most recently used last
        self.slots = {}  # thread: slot id -> idle connection of that thread
        self.opening = 0  # reservations: connections being opened
        self.retired = False
        self.orphaned_slots = deque()  # Django connection objects that were collected
        self._counters = Counters()
        self._budget_checked = False
        self.server_version = None  # libpq's server_version of this store's connections

    # -- lending ---------------------------------------------------------------------
    def acquire(self, slot=None, borrow=False, reserve=True):
        """A live idle connection (``Record``, now in use), or None: the caller must open
        one, holding the reservation taken here (then ``opened()`` or ``open_failed()``).
        ``borrow``: taken again by a request that lent one (counted in ``borrows``, not
        in ``requests``). ``reserve=False``: None takes no reservation (there is room).

        Raises ``CheckoutTimeout`` when the store is full for ``checkout_timeout`` seconds
        in total, however many dead idle connections the wait meets on the way.
        """
        wait = Wait()
        while True:
            stale = []
            try:
                with self._lock:
                    if self.orphaned_slots:
                        self._drain_orphans(stale)
                    record = self._wait(slot, stale, wait)
                    if record is None:
                        if reserve:
                            self.opening += 1
                    else:
                        record.in_use = True
            finally:
                if stale:
                    self._close_all(stale)
            if record is None:
                return None
            verdict = self._check(record)
            if verdict.alive:
                self._lend(record, reused=True, holder=slot, borrow=borrow)
                return record
            self.discard(record, reason=verdict.reason, detail=verdict.detail)

    def _wait(self, slot, stale, wait):
        """Under the lock (released while it waits): an idle connection, or None when there
        is room to open one."""
        waited_since = None  # this round (the counters add up rounds)
        woken_before = False
        while True:
            record = self._take_idle(slot)
            if record is not None or self._has_room():
                if self._waiters:  # none: nothing to pass on (the hot path pays no call)
                    self._pass_on()
                if waited_since is not None:
                    self._counters.checkout_wait_seconds += time.monotonic() - waited_since
                return record
            now = time.monotonic()
            if waited_since is None:
                waited_since = now
                if wait.deadline is None:
                    wait.deadline = now + self.options.checkout_timeout
                    self._counters.checkout_waits += 1
            remaining = wait.deadline - now
            if remaining <= 0:
                self._counters.checkout_timeouts += 1
                self._counters.checkout_wait_seconds += now - waited_since
                raise CheckoutTimeout(
                    f"persistent_backend: no free connection for database '{self.alias}' "
                    f"within {self.options.checkout_timeout:g}s ({self.mode} mode, "
                    f"max_size {self.max_size}, {self._in_use()} in use)"
                )
            # In slices: a thread that died holding a connection frees it only through
            # the garbage collector, which cannot wake anyone (it must not take this lock).
            waiter = Waiter(hungry=woken_before)
            if woken_before:
                self._waiters.appendleft(waiter)  # woken for nothing: keeps its place
            else:
                self._waiters.append(waiter)
            self._lock.release()
            interrupted = True
            try:
                waiter.wait(min(remaining, 0.5))
                interrupted = False
            finally:
                self._lock.acquire()  # held again, as the caller's ``with`` expects
                if not waiter.woken:
                    self._waiters.remove(waiter)
                else:
                    self._woken -= 1
                    if interrupted:  # its wake-up, or connection, goes to the next in line
                        if waiter.record is not None:
                            self._put_idle(waiter.record, stale)
                        elif self._waiters:
                            self._wake_next()
            if waiter.record is not None:
                self._pass_on()
                self._counters.checkout_wait_seconds += time.monotonic() - waited_since
                return waiter.record
            woken_before = waiter.woken
            self._drain_orphans(stale)

    def _take_idle(self, slot):
        if self.mode == "thread":
            return self.slots.pop(slot, None)
        return self.idle.pop() if self.idle else None

    def _has_room(self):
        return self.max_size is None or len(self.records) + self.opening < self.max_size

    def _in_use(self):
        return sum(1 for record in self.records if record.in_use)

    def _check(self, record):
        """Before reuse: expired while idle? dead? (no round trip unless ``ping_after``)."""
        now = time.monotonic()
        options = self.options
        if options.idle_timeout is not None and now - record.last_used > options.idle_timeout:
            return liveness.Verdict(False, "recycle:idle")
        if record.expires is not None and now >= record.expires:
            return liveness.Verdict(False, "recycle:age")
        verdict = record.checks.probe()
        if verdict.alive and options.ping_after is not None:
            if now - record.last_used >= options.ping_after:
                with self._lock:
                    self._counters.pings += 1
                verdict = liveness.ping(record.raw, self.is_psycopg3)
        return verdict

    def _lend(self, record, reused, holder, borrow=False):
        with self._lock:
            record.in_use = True
            record.holder = holder
            if borrow:
                self._counters.borrows += 1
                return
            record.uses += 1
            self._counters.requests += 1
            if reused:
                self._counters.reuses += 1

    def opened(self, record, in_use=True, connect_seconds=0.0, borrow=False):
        """A connection the caller opened with a reservation from ``acquire``/``reserve``."""
        to_close = []
        with self._lock:
            self.opening -= 1
            self._counters.opened += 1
            self._counters.connect_seconds += connect_seconds
            if not in_use and self.retired:
                # Retired while it was being opened: nobody would ever take it from here.
                self._counters.closed += 1
                to_close.append(record)
            else:
                self.records.add(record)
            if not in_use and not self.retired:
                self._put_idle(record, to_close)
        self._close_all(to_close)
        if in_use:
            self._lend(record, reused=False, holder=record.slot, borrow=borrow)

    def open_failed(self):
        """A reserved slot's connect failed: free the slot, count the failure."""
        with self._lock:
            self.opening -= 1
            self._counters.connect_failures += 1
            self._wake_for_room()

    def reserve(self):
        """Take a reservation for a replacement connection if there is room (no waiting)."""
        with self._lock:
            if self.retired or not self._has_room():
                return False
            self.opening += 1
            return True

    # -- taking back -----------------------------------------------------------------
    def checkin(self, record, lend=False):
        """Take back a connection at the end of a request (already rolled back / reset),
        or between two transactions of one (``lend``: counted in ``lends``).

        Returns the recycle reason ("age" or "uses") if it was closed instead of kept.
        """
        now = time.monotonic()
        options = self.options
        reason = None
        if record.expires is not None and now >= record.expires:
            reason = "age"
        elif options.max_uses is not None and record.uses >= options.max_uses:
            reason = "uses"
        to_close = []
        with self._lock:
            record.in_use = False
            record.holder = None
            record.last_used = now
            if lend:
                self._counters.lends += 1
            if reason is None and not self.retired:
                self._put_idle(record, to_close)
            else:
                self.records.discard(record)
                to_close.append(record)
                if reason:
                    self._counters.recycles[reason] += 1
                else:
                    self._counters.closed += 1  # its store was retired meanwhile
            self._sweep(now, to_close)
            if self.orphaned_slots:
                self._drain_orphans(to_close)
            if self._waiters:
                self._wake_for_room()
        if reason:
            logger.debug(
                "recycling backend %s of '%s' (%s: age %.0fs, %d uses)",
                record.backend_pid,
                self.alias,
                reason,
                record.age(now),
                record.uses,
            )
        if to_close:
            self._close_all(to_close)
        return reason

    def _put_idle(self, record, to_close):
        """Under the lock: idle (waking the oldest waiter), or handed to a waiter that lost
        one before (pool, process); thread mode: its thread's slot."""
        if self.mode == "thread":
            previous = self.slots.get(record.slot)
            if previous is not None and previous is not record:
                # A replacement was opened meanwhile: keep one connection per thread.
                self.records.discard(previous)
                self._counters.closed += 1
                to_close.append(previous)
            self.slots[record.slot] = record
        elif self._waiters and self._waiters[0].hungry:
            record.in_use = True  # no more barging past a checkout that lost once
            self._wake_next(record)
        else:
            record.in_use = False
            self.idle.append(record)
            if self._waiters and not self._woken:
                self._wake_next()

    def _pass_on(self):
        """Under the lock, as a checkout leaves with what it needed: connections went idle
        while the waiter woken for them had not run yet, so nobody else was woken; wake
        the next."""
        if self.idle and self._waiters and not self._woken:
            self._wake_next()

    def _wake_next(self, record=None):
        """Under the lock: wake the oldest waiting checkout (handing it ``record``)."""
        self._woken += 1
        self._waiters.popleft().wake(record)

    def _wake_for_room(self):
        """Under the lock: connections were closed or not opened; as many waiting checkouts
        as there is room for now, oldest first, go and open one (not a stampede)."""
        waiters = self._waiters
        if waiters and self.max_size is not None:
            room = self.max_size - len(self.records) - self.opening
            while waiters and room > 0:
                self._wake_next()
                room -= 1

    def _idle_records(self):
        return list(self.slots.values()) if self.mode == "thread" else list(self.idle)

    def _remove_idle(self, record):
        if self.mode == "thread":
            if self.slots.get(record.slot) is record:
                del self.slots[record.slot]
        elif record in self.idle:
            self.idle.remove(record)
        self.records.discard(record)

    def _sweep(self, now, to_close):
        """Under the lock: remove idle connections past ``idle_timeout`` or ``max_age``."""
        idle_timeout = self.options.idle_timeout
        for record in self._idle_records():
            if idle_timeout is not None and now - record.last_used > idle_timeout:
                reason = "idle"
            elif record.expires is not None and now >= record.expires:
                reason = "age"
            else:
                continue
            self._remove_idle(record)
            self._counters.recycles[reason] += 1
            to_close.append(record)

    def _drain_orphans(self, to_close):
        """Under the lock: connections of Django connection objects that no longer exist.

        Their thread ended (thread-local objects are collected with it): its idle
        connection (thread mode) is closed, and one it still held, never returned (e.g. a
        background thread that queried without ``close_old_connections()``), is taken back
        and closed too, so it does not hold a pool slot forever.
        """
        while self.orphaned_slots:
            slot = self.orphaned_slots.popleft()
            record = self.slots.pop(slot, None)
            if record is not None:
                self.records.discard(record)
                self._counters.closed += 1
                to_close.append(record)
            for record in [r for r in self.records if r.in_use and r.holder == slot]:
                self.records.discard(record)
                record.in_use = False
                self._counters.add("discards", "abandoned")
                to_close.append(record)
                logger.warning(
                    "a thread ended without returning its connection to '%s' (backend %s): "
                    "closed it. Call django.db.close_old_connections() when a background "
                    "thread is done with the database.",
                    self.alias,
                    record.backend_pid,
                )

    def discard(self, record, reason=None, detail="", counter=None):
        """Drop a connection for good: dead (``reason``), recycled, or closed on request."""
        with self._lock:
            self.records.discard(record)
            record.in_use = False
            if reason and reason.startswith("recycle:"):
                self._counters.recycles[reason.split(":", 1)[1]] += 1
            elif reason:
                self._counters.add("reconnects", reason)
            elif counter:
                self._counters.add("discards", counter)
            else:
                self._counters.closed += 1
            self._wake_for_room()
        if reason and not reason.startswith("recycle:"):
            logger.info(
                "discarding dead connection to '%s' (backend %s, %s%s); the next use reconnects",
                self.alias,
                record.backend_pid,
                reason,
                f": {detail}" if detail else "",
            )
        record.close()

    # -- housekeeping, shutdown --------------------------------------------------------
    def housekeep(self):
        """Close idle connections past ``idle_timeout``/``max_age`` (never busy ones)."""
        to_close = []
        with self._lock:
            self._sweep(time.monotonic(), to_close)
            self._drain_orphans(to_close)
            if to_close:
                self._wake_for_room()
        self._close_all(to_close)
        return len(to_close)

    def close_idle(self):
        """Close every idle connection (``connection.close()``, ``close_all()``)."""
        with self._lock:
            to_close = self._idle_records()
            for record in to_close:
                self._remove_idle(record)
            self._counters.closed += len(to_close)
            self._drain_orphans(to_close)
            self._wake_for_room()
        self._close_all(to_close)
        return len(to_close)

    def retire(self):
        """The settings changed: close idle connections now, busy ones when returned."""
        with self._lock:
            self.retired = True
        return self.close_idle()

    def settled(self):
        """Retired with nothing left open (registry stops draining it)."""
        with self._lock:
            return self.retired and not self.records and not self.opening

    def orphan_slot(self, slot):
        """A thread's Django connection object was garbage-collected (thread ended)."""
        self.orphaned_slots.append(slot)

    @staticmethod
    def _close_all(records):
        for record in records:
            record.close()

    # -- counters, statistics ------------------------------------------------------------
    def count(self, name, key=None, amount=1):
        """Add to one of the store's counters (see counters.py), under its lock."""
        with self._lock:
            self._counters.add(name, key, amount)

    def note_leak(self, path):
        """Count a transaction leaked by ``path``; True if it is that path's first."""
        with self._lock:
            return self._counters.note_leak(path)

    def first_connection(self):
        """True once per store: its first connection is open (time for the runtime checks)."""
        with self._lock:
            first, self._budget_checked = not self._budget_checked, True
        return first

    def snapshot(self):
        """The store's counters and connections as a dict (``stats()``)."""
        now = time.monotonic()
        with self._lock:
            records = sorted(self.records, key=lambda r: r.created)
            data = self._counters.as_dict()
            in_use = sum(1 for r in records if r.in_use)
            data.update(
                alias=self.alias,
                mode=self.mode,
                mode_reason=self.mode_reason,
                lend=self.lend,
                pid=os.getpid(),
                server=self.shape.server,
                server_processes=self.shape.processes,
                server_threads=self.shape.threads,
                in_use=in_use,
                idle=len(records) - in_use,
                opening=self.opening,
                waiting=len(self._waiters),
                size=len(records),
                max_size=self.max_size,
                housekeeping_seconds=self.housekeeping,
                connections=[r.describe(now) for r in records],
                options=self.options.as_dict(),
                store_age_seconds=round(now - self.created, 3),
            )
        return data
