"""A bounded load generator on loopback: a fixed number of GET requests, a deadline, threads.

Each worker thread takes the next request number, waits for its slot when a ``rate`` is
given (request ``i`` is due ``i / rate`` seconds after the start), sends it on a fresh
HTTP/1.1 connection (``Connection: close``: a stale keep-alive connection can never be
mistaken for a failure of the site) and records what came back:

* ``status``: the HTTP status, or 0 when no HTTP answer came (refused, reset, timeout);
* ``start`` / ``end``: ``time.monotonic()`` around the request;
* ``pid``: the daemon process that answered, when the site sends ``X-Fault-Pid`` (the
  test-only middleware of ``tests/faults/faultviews`` does);
* ``body``: the first 4 KiB of every answer that is not a 2xx (to check the 503 text and
  that no traceback leaks), or of every answer with ``keep_bodies=True``.

Nothing here retries: what the site answered is what is counted. Requests not started by
the deadline are not sent (``Load.sent`` < ``total``), so a hung site cannot hang a test.
"""

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PID_HEADER = "X-Fault-Pid"
BODY_KEEP = 4096


@dataclass
class Result:
    """One request's outcome: timing, status (0: no HTTP answer), daemon pid, body."""

    index: int
    path: str
    start: float
    end: float
    status: int
    pid: int | None = None
    error: str = ""
    body: bytes = b""
    headers: dict = field(default_factory=dict)

    @property
    def elapsed(self):
        return self.end - self.start

    @property
    def ok(self):
        return 200 <= self.status < 300

    @property
    def text(self):
        return self.body.decode(errors="replace")


def request(base_url, path, timeout=10.0, headers=None, method="GET", body=None):
    """One request on a fresh connection; a ``Result`` (whole body; status 0 on error)."""
    parts = urlsplit(base_url)
    start = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        end = time.monotonic()
        pid = response.getheader(PID_HEADER)
        return Result(
            index=-1,
            path=path,
            start=start,
            end=end,
            status=response.status,
            pid=int(pid) if pid and pid.isdigit() else None,
            body=data,
            headers={k.lower(): v for k, v in response.getheaders()},
        )
    except (OSError, http.client.HTTPException) as exc:
        return Result(-1, path, start, time.monotonic(), 0, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


class Load:
    """``total`` GETs over ``paths`` (round robin) from ``concurrency`` threads.

    ``rate``: requests per second for all threads together (None: as fast as they can).
    ``deadline``: seconds after ``start()`` when no new request is started any more.
    ``timeout``: per-request socket timeout.
    ``keep_bodies``: keep the first 4 KiB of every body (default: of non-2xx answers only).
    """

    def __init__(
        self,
        base_url,
        paths,
        total,
        concurrency=4,
        rate=None,
        deadline=60.0,
        timeout=10.0,
        headers=None,
        keep_bodies=False,
    ):
        if not paths:
            raise ValueError("Load needs at least one path")
        self.base_url = base_url
        self.paths = list(paths)
        self.total = total
        self.concurrency = max(1, min(concurrency, total))
        self.rate = rate
        self.deadline = deadline
        self.timeout = timeout
        self.headers = headers or {}
        self.keep_bodies = keep_bodies
        self.results = []
        self.started_at = None
        self.finished_at = None
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    # -- running ---------------------------------------------------------------------
    def start(self):
        """Start the worker threads; returns self."""
        self.started_at = time.monotonic()
        for n in range(self.concurrency):
            thread = threading.Thread(target=self._work, name=f"load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait(self):
        """Wait for every worker (bounded by the deadline plus one request timeout)."""
        limit = self.started_at + self.deadline + self.timeout + 5
        for thread in self._threads:
            thread.join(max(0.0, limit - time.monotonic()))
        self._stop.set()
        self.finished_at = time.monotonic()
        with self._lock:
            self.results.sort(key=lambda r: r.index)
        return self.results

    def run(self):
        """Start and wait for the end: the results."""
        return self.start().wait()

    def stop(self):
        """Start no new request (those in flight finish)."""
        self._stop.set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.wait()

    def _work(self):
        end_by = self.started_at + self.deadline
        while not self._stop.is_set():
            index = next(self._numbers)
            if index >= self.total:
                return
            if self.rate:
                due = self.started_at + index / self.rate
                pause = due - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    return
            if time.monotonic() >= end_by:
                return
            path = self.paths[index % len(self.paths)]
            result = request(self.base_url, path, self.timeout, self.headers)
            result.index = index
            result.body = result.body[:BODY_KEEP] if self.keep_bodies or not result.ok else b""
            with self._lock:
                self.results.append(result)

    # -- reading the results ---------------------------------------------------------
    @property
    def sent(self):
        return len(self.results)

    def snapshot(self):
        """The results so far (a copy; safe while the load runs)."""
        with self._lock:
            return list(self.results)


def counts(results):
    """{"sent", "2xx", "503", "500", "other"}: ``other`` is any other status or no answer."""
    figures = {"sent": len(results), "2xx": 0, "503": 0, "500": 0, "other": 0}
    for result in results:
        if result.ok:
            figures["2xx"] += 1
        elif result.status in (500, 503):
            figures[str(result.status)] += 1
        else:
            figures["other"] += 1
    return figures


def first_ok_after(results, moment, pid=None):
    """The earliest-ending 2xx that started at or after ``moment`` (from ``pid`` if given)."""
    candidates = [
        r for r in results if r.ok and r.start >= moment and (pid is None or r.pid == pid)
    ]
    return min(candidates, key=lambda r: r.end, default=None)


def describe(result, origin=0.0):
    """One line for an assertion message."""
    what = result.error or result.text.strip().replace("\n", " ")[:160]
    return (
        f"#{result.index} {result.path} -> {result.status} at +{result.start - origin:.3f}s "
        f"in {result.elapsed:.3f}s (pid {result.pid}): {what}"
    )
