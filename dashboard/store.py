"""The shared metrics directory: every process's published figures, merged by the reader.

Layout of ``conf.metrics_dir()``:

- ``p-<host>-<pid>-<start time>.json``: one per live process, replaced atomically by that process
  (metrics.py) every few seconds. Nothing else writes it.
- ``retired.json``: the counters of processes that have exited (folded in by whichever
  process reads the directory first after they died), the last exited processes, and
  which live process replaced which dead one (restarts).
- ``history.json``: the shared ring of samples behind rates and charts (history.py).

Readers serialise on an exclusive ``flock`` of the directory itself, so no lock file has
to be writable by both root (tests, management commands) and the daemon user.
"""

import contextlib
import fcntl
import json
import logging
import os
import pwd
import tempfile
import time

from dashboard import conf
from dashboard.histogram import add_into, empty_buckets

logger = logging.getLogger("dashboard")

RECORD_PREFIX = "p-"
RETIRED = "retired.json"
EXITED_KEPT = 20
COUNTERS = ("requests", "errors_5xx", "duration_sum", "opened")


class MetricsDirError(OSError):
    """The metrics directory cannot be created or written."""


def ensure_dir():
    """Create the metrics directory if needed; a root-created one goes to the daemon user."""
    path = conf.metrics_dir()
    if path.is_dir():
        return path
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o775)
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(conf.get("DASHBOARD_DAEMON_USER"))
            except KeyError:
                user = None
            if user is not None:
                os.chown(path, user.pw_uid, user.pw_gid)
    except OSError as exc:
        raise MetricsDirError(f"cannot create the metrics directory {path}: {exc}") from exc
    return path


def write_json(path, data):
    """Replace ``path`` atomically (readers see the old or the new file, never half)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o644)
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (FileNotFoundError, ValueError):
        return None


@contextlib.contextmanager
def locked():
    """Exclusive lock of the metrics directory for read-merge-write cycles."""
    path = ensure_dir()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def record_name(host, pid, started):
    """The start time is in the name: a reused pid never overwrites a dead process's file."""
    return f"{RECORD_PREFIX}{host}-{pid}-{int(started or 0)}.json"


def process_key(host, pid):
    return f"{host}:{pid}"


def new_retired(now):
    return {
        "since": now,
        "requests": 0,
        "errors_5xx": 0,
        "duration_sum": 0.0,
        "opened": 0,
        "buckets": empty_buckets(),
        "exited": [],
        "lineage": {},
    }


def opened_connections(record):
    """New PostgreSQL connections the process opened (all aliases), or None without stats."""
    stats = record.get("backend")
    if not isinstance(stats, dict) or not stats:  # {}: no database uses persistent_backend
        return None
    return sum(int(alias.get("opened") or 0) for alias in stats.values())


def collect(now, is_alive):
    """Read every record; fold the dead into retired.json. Call inside ``locked()``.

    ``is_alive(record, now)`` tells whether the process that wrote a record still runs.
    Returns ``(live_records, retired)``; each live record gains ``restarts`` and
    ``replaced_pid`` (the dead process it replaced, if it is a restart).
    """
    path = conf.metrics_dir()
    retired = read_json(path / RETIRED)
    changed = retired is None
    if retired is None:
        retired = new_retired(now)
    live, dead = [], []
    folded = {e.get("file") for e in retired["exited"]}
    for entry in sorted(os.listdir(path)):
        if not (entry.startswith(RECORD_PREFIX) and entry.endswith(".json")):
            continue
        record = read_json(path / entry)
        if record is None:
            continue
        if is_alive(record, now):
            live.append(record)
            continue
        dead.append(entry)
        if entry not in folded:  # else: folded already, only its removal failed
            _retire(retired, record, now, entry)
            changed = True
    changed |= _pair_restarts(retired, live)
    if changed:
        write_json(path / RETIRED, retired)
    # Removed only once retired.json holds their counters: never lost, never counted twice.
    for entry in dead:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path / entry)
    for record in live:
        lineage = retired["lineage"].get(process_key(record["host"], record["pid"]), {})
        record["restarts"] = lineage.get("restarts", 0)
        record["replaced_pid"] = lineage.get("replaced")
    return live, retired


def _retire(retired, record, now, file):
    key = process_key(record["host"], record["pid"])
    for name in ("requests", "errors_5xx", "duration_sum"):
        retired[name] += record.get(name) or 0
    retired["opened"] += opened_connections(record) or 0
    add_into(retired["buckets"], record.get("buckets") or [])
    lineage = retired["lineage"].pop(key, {})
    retired["exited"].append(
        {
            "host": record["host"],
            "pid": record["pid"],
            "ppid": record.get("ppid"),
            "group": record.get("group"),
            "started": record.get("started"),
            "last_published": record.get("published_at"),
            "noticed": now,
            "requests": record.get("requests") or 0,
            "restarts": lineage.get("restarts", 0),
            "paired": False,
            "file": file,
        }
    )
    del retired["exited"][:-EXITED_KEPT]


def _pair_restarts(retired, live):
    """A process new to us replaces the oldest unpaired exited one of the same parent."""
    changed = False
    lineage = retired["lineage"]
    for record in sorted(live, key=lambda r: r.get("started") or 0):
        key = process_key(record["host"], record["pid"])
        if key in lineage:
            continue
        match = next(
            (
                dead
                for dead in retired["exited"]
                if not dead["paired"]
                and dead["host"] == record["host"]
                and dead["ppid"] == record.get("ppid")
                and dead["group"] == record.get("group")
                and (dead.get("started") or 0) < (record.get("started") or 0)
            ),
            None,
        )
        if match is None:
            lineage[key] = {"restarts": 0, "replaced": None}
        else:
            match["paired"] = True
            lineage[key] = {"restarts": match["restarts"] + 1, "replaced": match["pid"]}
        changed = True
    return changed


def totals(live, retired):
    """Site-wide counters: every live process plus every process that has exited."""
    result = {name: retired[name] for name in COUNTERS}
    result["buckets"] = list(retired["buckets"])
    for record in live:
        for name in ("requests", "errors_5xx", "duration_sum"):
            result[name] += record.get(name) or 0
        result["opened"] += opened_connections(record) or 0
        add_into(result["buckets"], record.get("buckets") or [])
    return result


def stale_after():
    """A record from another host (no pid to check) is dead after this many silent seconds."""
    return max(30.0, 10 * conf.publish_interval())


def age(timestamp, now=None):
    return None if timestamp is None else max(0.0, (now or time.time()) - timestamp)
