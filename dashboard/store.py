"""The shared metrics directory: every process's published figures, merged by the reader.

Layout of ``conf.metrics_dir()``:

- ``p-<host>-<pid>-<start time>.json``: one per live process, replaced atomically by that process
  (metrics.py) every few seconds. Nothing else writes it.
- ``retired.json``: the counters of processes that have exited (folded in by whichever
  process reads the directory first after they died), the last exited processes, and
  which live process replaced which dead one (restarts).
- ``history.json``: the shared ring of samples behind rates and charts (history.py).

Readers serialise on an exclusive ``flock`` of the directory itself, so no lock file has
to be writable by both root (tests, management commands) and the daemon user. The
directory is private to the daemon user (0700), and a request never waits for the lock
longer than ``LOCK_WAIT`` seconds: then it reads the records without writing (``locked``
raises LockBusy). Every file read is checked against records.py's schema first.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import stat
import tempfile
import time

from dashboard import conf, records
from dashboard.histogram import add_into, empty_buckets

logger = logging.getLogger("dashboard")

RECORD_PREFIX = "p-"
RETIRED = "retired.json"
EXITED_KEPT = 20
COUNTERS = ("requests", "errors_5xx", "duration_sum", "opened")
LOCK_WAIT = 0.3  # seconds a request may wait for the directory lock
FILE_MAX = 1_000_000  # bytes: a bigger file is not one of ours

_warned = set()  # names of bad files already logged by this process


class MetricsDirError(OSError):
    """The metrics directory cannot be created or written."""


class LockBusy(OSError):
    """Another process held the metrics directory's lock for longer than LOCK_WAIT."""


def ensure_dir():
    """Create the metrics directory if needed; a root-created one goes to the daemon user."""
    path = conf.metrics_dir()
    if path.is_dir():
        return path
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
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
            os.fchmod(fh.fileno(), 0o600)
            fh.write(json.dumps(data, separators=(",", ":")))  # json.dump: no C encoder
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path, with_owner=False):
    """The parsed file, or None if missing, unreadable, not a regular file or not JSON.

    Opened without following a symlink and without blocking (a FIFO planted under a
    record's name must not hang the reader). ``with_owner``: ``(data, uid)``.
    """
    data, uid = None, None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return (None, None) if with_owner else None
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size <= FILE_MAX:
            uid = info.st_uid
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = json.loads(fh.read())
    except (OSError, ValueError):
        data = None
    finally:
        os.close(fd)
    return (data, uid) if with_owner else data


@contextlib.contextmanager
def locked(wait=None):
    """Exclusive lock of the metrics directory for read-merge-write cycles.

    Tries without blocking until ``wait`` seconds (LOCK_WAIT) have passed, then raises
    LockBusy: whoever holds the lock, a request is never stuck behind it.
    """
    path = ensure_dir()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + (LOCK_WAIT if wait is None else wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"the metrics directory {path} is locked by another process: "
                        "figures read without updating the shared history"
                    ) from None
                time.sleep(0.01)
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


def load_retired(path, now):
    """retired.json checked against the schema; a fresh one if missing or bad."""
    data, uid = read_json(path / RETIRED, with_owner=True)
    if data is None:
        return None
    try:
        if not records.trusted_owner_uid(uid):
            raise records.BadRecord(f"owned by uid {uid}")
        return records.retired(data)
    except records.BadRecord as exc:
        _warn_once(RETIRED, str(exc))
        return None


def _warn_once(entry, reason):
    if entry not in _warned:
        _warned.add(entry)
        logger.warning("dashboard: skipped %s in the metrics directory: %s", entry, reason)


def read_records(path, is_wanted):
    """Every valid record of the directory: ``(records, skipped)``.

    ``is_wanted(record, uid)`` may refuse a valid record (another host's, a pid that is
    not a process of this site); refused and invalid files count as skipped, each logged
    once per process.
    """
    found, skipped = [], 0
    for entry in sorted(os.listdir(path)):
        if not (entry.startswith(RECORD_PREFIX) and entry.endswith(".json")):
            continue
        record, uid = read_json(path / entry, with_owner=True)
        if record is None and uid is None and not os.path.lexists(path / entry):
            continue  # replaced or removed while we listed
        try:
            if not records.trusted_owner_uid(uid):
                raise records.BadRecord(f"not a regular JSON file of this account (uid {uid})")
            records.process_record(record, entry, record_name)
            reason = is_wanted(record, uid)
            if reason:
                raise records.BadRecord(reason)
        except records.BadRecord as exc:
            skipped += 1
            _warn_once(entry, str(exc))
            continue
        found.append((entry, record))
    return found, skipped


def collect(now, is_alive, is_wanted, write=True):
    """Read every record; fold the dead into retired.json. Call inside ``locked()``.

    ``is_alive(record, now)`` tells whether the process that wrote a record still runs.
    Returns ``(live_records, retired, skipped)``; each live record gains ``restarts`` and
    ``replaced_pid`` (the dead process it replaced, if it is a restart). ``write=False``
    (the lock was busy): nothing is folded, written or removed.
    """
    path = conf.metrics_dir()
    retired = load_retired(path, now)
    changed = retired is None
    if retired is None:
        retired = new_retired(now)
    live, dead = [], []
    folded = {e.get("file") for e in retired["exited"]}
    found, skipped = read_records(path, is_wanted)
    for entry, record in found:
        if is_alive(record, now):
            live.append(record)
            continue
        dead.append(entry)
        if entry not in folded:  # else: folded already, only its removal failed
            _retire(retired, record, now, entry)
            changed = True
    changed |= _pair_restarts(retired, live)
    if changed and write:
        write_json(path / RETIRED, retired)
    # Removed only once retired.json holds their counters: never lost, never counted twice.
    for entry in dead if write else ():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path / entry)
    for record in live:
        lineage = retired["lineage"].get(process_key(record["host"], record["pid"]), {})
        record["restarts"] = lineage.get("restarts", 0)
        record["replaced_pid"] = lineage.get("replaced")
    return live, retired, skipped


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
