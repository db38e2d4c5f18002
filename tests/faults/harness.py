"""What the fault tests share: the two server variants, a view of the site's sessions in
PostgreSQL, fault injection helpers, and the figures each test reports.

Times are ``time.monotonic()`` seconds, the clock of ``harness/load.py``.
"""

import os
import re
import threading
import time
from dataclasses import dataclass, field

from harness import load
from harness.pgclient import SettingsClient
from harness.waiting import wait_until

# -- the site under test -------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    processes: int
    threads: int
    mode: str

    @property
    def label(self):
        return f"{self.name} {self.processes}x{self.threads} {self.mode}"

    @property
    def capacity(self):
        return self.processes * self.threads


PREFORK = Variant("prefork", processes=2, threads=1, mode="process")
THREADED = Variant("threaded", processes=1, threads=8, mode="pool")
VARIANTS = {v.name: v for v in (PREFORK, THREADED)}

# The page mix of the load: 4, 2 and 1 queries; ids are filled in from the demo data.
PAGE_MIX = ("/items/{id}/", "/", "/items/{id2}/", "/healthz")
CLEAR_503 = ("The database is unavailable", "database unavailable")
TRACEBACK_SIGNS = ("Traceback (most recent call last)", 'File "/', "Exception Value:")


def page_paths(item_ids):
    """The load's paths: item pages spread over the demo items, the home page, /healthz."""
    paths = []
    for n, template in enumerate(PAGE_MIX * 4):
        paths.append(template.format(id=item_ids[n % len(item_ids)], id2=item_ids[-1 - n]))
    return paths


def clear_503(result):
    """A 503 that says what happened (the 503 page or /healthz's one line) and no traceback."""
    text = result.text
    return (
        result.status == 503
        and any(phrase in text for phrase in CLEAR_503)
        and not any(sign in text for sign in TRACEBACK_SIGNS)
    )


# -- PostgreSQL, seen from outside -------------------------------------------------------


APP_NAME = re.compile(r"^site:[^:]*:(\d+)$")


class SiteDatabase(SettingsClient):
    """Superuser connections to the test database: the site's sessions, killing them.

    The site's sessions are those whose ``application_name`` is ``site:<host>:<pid>``,
    except this test process's own (pytest uses the same backend and prefix).
    """

    def __init__(self, settings_dict):
        super().__init__(settings_dict, settings_dict["NAME"], "faults-observer")
        self.dbname = settings_dict["NAME"]
        self.own_pid = os.getpid()

    SESSIONS = (
        "SELECT pid, application_name, state, query, backend_start FROM pg_stat_activity "
        "WHERE datname = %s AND backend_type = 'client backend' "
        "AND application_name LIKE 'site:%%' AND pid <> pg_backend_pid()"
    )

    def sessions(self, conn=None):
        """[{backend_pid, process, state, query}] of the site's sessions."""
        rows = []
        for backend_pid, app, state, query, started in self.query(
            self.SESSIONS, [self.dbname], conn=conn
        ):
            match = APP_NAME.match(app or "")
            process = int(match.group(1)) if match else None
            if process == self.own_pid:
                continue
            rows.append(
                {
                    "backend_pid": backend_pid,
                    "process": process,
                    "state": state,
                    "query": query,
                    "started": started,
                }
            )
        return rows

    def terminate(self, conn=None, processes=None):
        """pg_terminate_backend() every site session (of ``processes`` if given)."""
        targets = [
            s["backend_pid"]
            for s in self.sessions(conn)
            if processes is None or s["process"] in processes
        ]
        if targets:
            self.query(
                "SELECT pg_terminate_backend(pid) FROM unnest(%s) AS pid", [targets], conn=conn
            )
        return targets


class UpWatcher:
    """Notes the first moment PostgreSQL accepts a connection again (polls every 10 ms)."""

    def __init__(self, database):
        self.database = database
        self.up_at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            attempt = time.monotonic()
            if self.database.accepting():
                self.up_at = attempt
                return
            self._stop.wait(0.01)

    def wait(self, timeout=60):
        self._thread.join(timeout)
        self._stop.set()
        if self.up_at is None:
            raise AssertionError(f"PostgreSQL not accepting connections after {timeout}s")
        return self.up_at


def process_stats(server, timeout=30.0):
    """{daemon pid: persistent_backend.stats() counters} from every daemon process."""
    import json

    wanted = set(server.daemon_pids())
    found = {}
    capacity = server.variant.capacity

    def every_process():
        batch = load.Load(
            server.url, ["/_faults/stats/?seconds=0.05"], capacity * 2, capacity, keep_bodies=True
        ).run()
        for result in batch:
            if result.ok:
                data = json.loads(result.body)
                found[data["pid"]] = data["stats"]
        return wanted <= set(found)

    wait_until(every_process, timeout, 0, f"stats of every process {sorted(wanted)}")
    return {pid: found[pid] for pid in wanted}


def total(stats, key):
    return sum(s[key] for s in stats.values())


# -- reading a run -------------------------------------------------------------------------


def recovery(results, moment, pids):
    """Seconds from ``moment`` to the first 2xx on every process in ``pids`` (None if one
    never answered 2xx after it), and {pid: seconds}."""
    per_pid = {}
    for pid in pids:
        first = load.first_ok_after(results, moment, pid)
        per_pid[pid] = None if first is None else max(0.0, first.end - moment)
    if not per_pid or None in per_pid.values():
        return None, per_pid
    return max(per_pid.values()), per_pid


def split(results, window_start, window_end):
    """(before, during, after): requests over before the window, touching it, after it."""
    before = [r for r in results if r.end < window_start]
    after = [r for r in results if r.start > window_end]
    during = [r for r in results if r.end >= window_start and r.start <= window_end]
    return before, during, after


def error_log(server):
    """The whole Apache error log of a test server (Django's log lines land there too)."""
    path = server.server_root / "error_log"
    return path.read_text(errors="replace") if path.exists() else ""


def failures(results):
    return [r for r in results if not r.ok]


def explain(results, origin, limit=12):
    lines = [load.describe(r, origin) for r in results[:limit]]
    if len(results) > limit:
        lines.append(f"... and {len(results) - limit} more")
    return "\n".join(lines)


# -- figures -------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the fault table."""

    fault: str
    variant: str
    sent: int = 0
    ok: int = 0
    s503: int = 0
    s500: int = 0
    other: int = 0
    recovery: float | None = None
    notes: list = field(default_factory=list)

    @classmethod
    def from_results(cls, fault, variant, results, recovery=None, notes=()):
        figures = load.counts(results)
        return cls(
            fault,
            variant,
            sent=figures["sent"],
            ok=figures["2xx"],
            s503=figures["503"],
            s500=figures["500"],
            other=figures["other"],
            recovery=recovery,
            notes=list(notes),
        )

    def cells(self):
        recovery = "-" if self.recovery is None else f"{self.recovery:.3f} s"
        return [
            self.fault,
            self.variant,
            str(self.sent),
            str(self.ok),
            str(self.s503),
            str(self.s500),
            str(self.other),
            recovery,
            "; ".join(self.notes),
        ]


HEADERS = ["fault", "variant", "sent", "2xx", "503", "500", "other", "recovery", "notes"]


def markdown_table(rows):
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i in (0, 1, 8) else "---:" for i in range(len(HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def text_table(rows):
    table = [HEADERS] + [row.cells() for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS) - 1)]
    out = []
    for r in table:
        cells = [
            c.rjust(w) if 2 <= i <= 7 else c.ljust(w)
            for i, (c, w) in enumerate(zip(r[:-1], widths, strict=True))
        ]
        out.append("  ".join(cells) + "  " + r[-1])
    return "\n".join(out)
