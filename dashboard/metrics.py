"""This process's request figures, and their publication for whichever process answers a poll.

Every request costs a few additions and a histogram bucket in its thread's own slot of
``recorder`` (no lock, no I/O). A daemon thread (``publisher``) writes the figures, with
``persistent_backend.stats()`` and mod_wsgi's own view of the process, to
``p-<host>-<pid>-<start>.json`` in the metrics directory every
``DASHBOARD_PUBLISH_INTERVAL`` seconds (and once more at exit): the only writes, never one
per request. store.py merges the files of all processes.
"""

import atexit
import logging
import os
import threading
import time

import persistent_backend
from dashboard import conf, processes, store
from dashboard.histogram import add_into, bucket_index, empty_buckets

logger = logging.getLogger("dashboard")


class _Slot:
    """One thread's counters: only that thread writes them, so counting takes no lock."""

    __slots__ = ("thread", "errors_5xx", "duration_sum", "buckets", "in_flight", "busy_seconds")

    def __init__(self, thread):
        self.thread = thread
        self.errors_5xx = 0
        self.duration_sum = 0.0
        self.buckets = empty_buckets()  # their sum is the number of requests counted
        self.in_flight = 0
        self.busy_seconds = 0.0

    def add_into(self, total):
        total.errors_5xx += self.errors_5xx
        total.duration_sum += self.duration_sum
        add_into(total.buckets, self.buckets)
        total.in_flight += self.in_flight
        total.busy_seconds += self.busy_seconds


class Recorder:
    """Counters of the requests this process served (in memory, one slot per thread).

    A request touches only its own thread's slot: a few additions and a histogram bucket,
    no lock. ``read()`` (the publisher, every few seconds) adds the slots up under the
    recorder's lock, folding those of threads that ended into one.
    """

    def __init__(self):
        self._lock = threading.Lock()  # the list of slots (a new thread, a read)
        self._local = threading.local()
        self._slots = []
        self._ended = _Slot(None)  # threads that ended

    def _slot(self):
        slot = _Slot(threading.current_thread())
        with self._lock:
            self._slots.append(slot)
        self._local.slot = slot
        return slot

    def begin(self):
        """A request starts in this thread: its slot, for ``end()``."""
        slot = getattr(self._local, "slot", None) or self._slot()
        slot.in_flight += 1
        return slot

    def end(self, slot, seconds, status, counted=True):
        slot.in_flight -= 1
        slot.busy_seconds += seconds
        if counted:
            slot.buckets[bucket_index(seconds)] += 1
            slot.errors_5xx += status >= 500
            slot.duration_sum += seconds

    def read(self):
        total = _Slot(None)
        with self._lock:
            alive = []
            for slot in self._slots:
                if slot.thread.is_alive():
                    alive.append(slot)
                else:
                    slot.add_into(self._ended)
            self._slots = alive
            for slot in [self._ended, *alive]:
                slot.add_into(total)
        return {
            "requests": sum(total.buckets),
            "errors_5xx": total.errors_5xx,
            "duration_sum": total.duration_sum,
            "buckets": total.buckets,
            "in_flight": total.in_flight,
            "busy_seconds": total.busy_seconds,
        }


_stats_failed = set()


def backend_stats():
    """persistent_backend.stats() of this process, or None if it cannot say (logged once)."""
    try:
        return persistent_backend.stats()
    except Exception as exc:
        if os.getpid() not in _stats_failed:
            _stats_failed.add(os.getpid())
            logger.warning("dashboard: persistent_backend.stats() failed: %r", exc)
        return None


class Publisher:
    """Writes this process's record now and then; started once per process (fork-aware)."""

    def __init__(self, recorder):
        self.recorder = recorder
        self._lock = threading.Lock()
        self._pid = None
        self._stop = threading.Event()
        self._thread = None
        self._identity = None
        self._busy_mark = None  # (time, busy_seconds) at the last periodic publication
        self.avg_busy = None
        self.published_at = None
        self.error = None
        self.stopped = False

    def start(self):
        """Idempotent: identity, mod_wsgi metrics recording, first record, thread."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._identity = processes.identity()
            self._pid = os.getpid()  # after the identity: record() needs it
            mw = processes.mod_wsgi_module()
            if mw is not None and hasattr(mw, "start_recording_metrics"):
                mw.start_recording_metrics()
            # Published before this process serves its first request: a process that has
            # counted anything always has a record.
            self.publish_safely()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="dashboard-publisher", daemon=True
            )
            self._thread.start()

    def stop(self):
        """Stop the thread and publish a last time (at exit, or when a test is done)."""
        if self._pid != os.getpid() or self.stopped:
            return
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.publish_safely()
        self.stopped = True

    def _run(self, stop):
        while not stop.wait(conf.publish_interval()):
            self._measure_busy()
            self.publish_safely()

    def _measure_busy(self):
        """Average busy request threads since the last periodic publication."""
        mw = processes.mod_wsgi_module()
        if mw is not None and hasattr(mw, "request_metrics"):
            # request_metrics() reports (and resets) the period since its previous call.
            figures = mw.request_metrics()
            self.avg_busy = figures.get("capacity_utilization", 0.0) * mw.threads_per_process
            return
        now, busy = time.time(), self.recorder.read()["busy_seconds"]
        if self._busy_mark is not None and now > self._busy_mark[0]:
            self.avg_busy = (busy - self._busy_mark[1]) / (now - self._busy_mark[0])
        self._busy_mark = (now, busy)

    def record(self):
        # The time is taken first: the counters read after it hold every request that
        # finished before it (what "published_at >= t" promises a reader).
        now = time.time()
        figures = self.recorder.read()
        mw = processes.mod_wsgi_module()
        busy = figures.pop("in_flight")
        if mw is not None and hasattr(mw, "process_metrics"):
            busy = mw.process_metrics().get("active_requests", busy)
        return {
            **self._identity,
            "published_at": now,
            **figures,
            "busy_threads": busy,
            "avg_busy_threads": self.avg_busy,
            "backend": backend_stats(),
        }

    def current(self):
        """This process's record as of now, from memory (what publish() would write)."""
        if self._pid != os.getpid():
            self.start()
        return self.record()

    def publish(self):
        if self._pid != os.getpid():
            self.start()
            return
        record = self.record()
        path = store.ensure_dir()
        name = store.record_name(record["host"], record["pid"], record["started"])
        store.write_json(path / name, record)
        self.published_at = record["published_at"]
        self.error = None

    def publish_safely(self):
        """publish(), logging (once per distinct error) instead of raising."""
        if self.stopped:
            return
        try:
            self.publish()
        except Exception as exc:  # the publisher thread must outlive any one failure
            message = f"{type(exc).__name__}: {exc}"
            if message != self.error:
                logger.warning("dashboard: cannot publish this process's metrics: %s", message)
            self.error = message


recorder = Recorder()
publisher = Publisher(recorder)


def start_process():
    """Start counting and publishing in this process; safe anywhere, idempotent."""
    publisher.start()


def _after_fork_in_child():
    global recorder, publisher
    recorder = Recorder()
    publisher = Publisher(recorder)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(lambda: publisher.stop())
