"""This process's request figures, and their publication for whichever process answers a poll.

Every request costs a lock and a few additions in memory (``recorder``). A daemon thread
(``publisher``) writes the figures, with ``persistent_backend.stats()`` and mod_wsgi's own
view of the process, to ``p-<host>-<pid>-<start>.json`` in the metrics directory every
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
from dashboard.histogram import bucket_index, empty_buckets

logger = logging.getLogger("dashboard")


class Recorder:
    """Counters of the requests this process served (in memory, thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = 0
        self.errors_5xx = 0
        self.duration_sum = 0.0
        self.buckets = empty_buckets()
        self.in_flight = 0
        self.busy_seconds = 0.0

    def begin(self):
        with self._lock:
            self.in_flight += 1

    def end(self, seconds, status, counted=True):
        index = bucket_index(seconds)
        with self._lock:
            self.in_flight -= 1
            self.busy_seconds += seconds
            if counted:
                self.requests += 1
                self.errors_5xx += status >= 500
                self.duration_sum += seconds
                self.buckets[index] += 1

    def read(self):
        with self._lock:
            return {
                "requests": self.requests,
                "errors_5xx": self.errors_5xx,
                "duration_sum": self.duration_sum,
                "buckets": list(self.buckets),
                "in_flight": self.in_flight,
                "busy_seconds": self.busy_seconds,
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
