"""The schema of the files in the metrics directory, checked on every read.

Whatever can write in that directory (the daemon user, shared by other Apache apps on a
stock Debian) can plant a file, so a record is data from outside: every field the
dashboard uses is checked for type and range, its name must match its content, and it
must be owned by this account (or root). A record that fails is skipped, never shown.
"""

import math
import os
import re

from dashboard.histogram import BOUNDS

HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
PID_MAX = 4194304  # the kernel's upper limit for pid_max
COUNT_MAX = 2**53  # what a JSON number (a JavaScript double) holds exactly
TEXT_MAX = 200
SERVERS = {"mod_wsgi daemon", "mod_wsgi embedded", "runserver", "other"}
POOL_NUMBERS = (
    "opened", "reuses", "requests", "leaked_transactions", "checkout_waits",
    "checkout_wait_seconds", "checkout_timeouts", "in_use", "idle", "size", "opening",
)  # fmt: skip
POOL_REASONS = ("reconnects", "recycles")


class BadRecord(ValueError):
    """A file of the metrics directory that does not follow the schema."""


def _check(condition, message):
    if not condition:
        raise BadRecord(message)


def _number(value, name, integer=False, optional=False, low=0, high=COUNT_MAX):
    if value is None and optional:
        return
    kinds = int if integer else (int, float)
    _check(
        isinstance(value, kinds) and not isinstance(value, bool),
        f"{name} is not a {'whole ' if integer else ''}number",
    )
    _check(math.isfinite(value) and low <= value <= high, f"{name} is out of range")


def _text(value, name, optional=True):
    if value is None and optional:
        return
    _check(isinstance(value, str) and len(value) <= TEXT_MAX, f"{name} is not a short text")


def buckets(value, name="buckets"):
    """Check a histogram's bucket counts: one per bound plus +Inf, non-negative integers."""
    _check(isinstance(value, list) and len(value) == len(BOUNDS) + 1, f"{name}: wrong length")
    for count in value:
        _number(count, name, integer=True)


def backend(value):
    """persistent_backend.stats() as published: {alias: {counters, gauges, mode...}}."""
    if value is None:
        return
    _check(isinstance(value, dict) and len(value) <= 32, "backend is not a dict of aliases")
    for alias, stats in value.items():
        _check(HOST_RE.match(alias) is not None, "backend alias is not a plain name")
        _check(isinstance(stats, dict), "backend stats are not a dict")
        for name in POOL_NUMBERS:
            _number(stats.get(name), f"backend.{name}", optional=True)
        _number(stats.get("max_size"), "backend.max_size", integer=True, optional=True)
        _text(stats.get("mode"), "backend.mode")
        for name in POOL_REASONS:
            reasons = stats.get(name) or {}
            _check(isinstance(reasons, dict), f"backend.{name} is not a dict")
            for reason, count in reasons.items():
                _text(reason, f"backend.{name} reason", optional=False)
                _number(count, f"backend.{name}", integer=True)


def process_record(record, file_name, record_name):
    """Check a ``p-<host>-<pid>-<start>.json`` record; raise BadRecord if it is not one."""
    _check(isinstance(record, dict), "not a JSON object")
    host, pid = record.get("host"), record.get("pid")
    _check(isinstance(host, str) and HOST_RE.match(host) is not None, "host is not a host name")
    _number(pid, "pid", integer=True, low=1, high=PID_MAX)
    _number(record.get("ppid"), "ppid", integer=True, optional=True, high=PID_MAX)
    _number(record.get("started"), "started", high=1e11)
    _check(file_name == record_name(host, pid, record["started"]), "name does not match")
    _number(record.get("published_at"), "published_at", high=1e11)
    for name in ("requests", "errors_5xx", "busy_threads"):
        _number(record.get(name), name, integer=True)
    for name in ("duration_sum", "busy_seconds"):
        _number(record.get(name), name, optional=name == "busy_seconds")
    _number(record.get("avg_busy_threads"), "avg_busy_threads", optional=True, high=1e6)
    _number(record.get("processes"), "processes", integer=True, optional=True, high=1e6)
    _number(record.get("threads"), "threads", integer=True, optional=True, high=1e6)
    _check(record.get("server") in SERVERS | {None}, "server is not a known kind")
    _text(record.get("group"), "group")
    _text(record.get("process_group"), "process_group")
    buckets(record.get("buckets"))
    backend(record.get("backend"))
    return record


def trusted_owner_uid(uid):
    """A file of the metrics directory written by this account or by root."""
    return uid in (os.geteuid(), 0)


def retired(data):
    """Check retired.json (the counters of exited processes); raise BadRecord if bad."""
    _check(isinstance(data, dict), "retired.json is not a JSON object")
    _number(data.get("since"), "since", high=1e11)
    for name in ("requests", "errors_5xx", "opened"):
        _number(data.get(name), name, integer=True)
    _number(data.get("duration_sum"), "duration_sum")
    buckets(data.get("buckets"))
    _check(isinstance(data.get("exited"), list), "exited is not a list")
    for entry in data["exited"]:
        _check(isinstance(entry, dict), "an exited entry is not an object")
        _check(HOST_RE.match(str(entry.get("host"))) is not None, "exited host")
        _number(entry.get("pid"), "exited pid", integer=True, low=1, high=PID_MAX)
        _number(entry.get("ppid"), "exited ppid", integer=True, optional=True, high=PID_MAX)
        _number(entry.get("requests"), "exited requests", integer=True)
        _number(entry.get("restarts"), "exited restarts", integer=True)
        for name in ("started", "last_published", "noticed"):
            _number(entry.get(name), f"exited {name}", optional=True, high=1e11)
        _text(entry.get("group"), "exited group")
        _text(entry.get("file"), "exited file")
        _check(isinstance(entry.get("paired"), bool), "exited paired")
    lineage = data.get("lineage")
    _check(isinstance(lineage, dict), "lineage is not an object")
    for key, value in lineage.items():
        _text(key, "lineage key", optional=False)
        _check(isinstance(value, dict), "lineage entry")
        _number(value.get("restarts"), "lineage restarts", integer=True)
        _number(value.get("replaced"), "lineage replaced", integer=True, optional=True, low=1)
    return data


def sample(data):
    """Check one entry of history.json (history.make_sample plus its chart point)."""
    _check(isinstance(data, dict), "a sample is not an object")
    _number(data.get("t"), "t", high=1e11)
    _check(isinstance(data.get("procs"), dict), "procs")
    for key, entry in data["procs"].items():
        _text(key, "procs key", optional=False)
        _check(isinstance(entry, list) and len(entry) == 4, "procs entry")
        _number(entry[0], "procs published", high=1e11)
        for value in entry[1:]:
            _number(value, "procs counter", optional=True)
    _check(isinstance(data.get("cpu"), dict), "cpu")
    for key, value in data["cpu"].items():
        _text(key, "cpu key", optional=False)
        _number(value, "cpu seconds")
    xact = data.get("xact")
    if xact is not None:
        _check(isinstance(xact, list) and len(xact) == 2, "xact")
        _number(xact[0], "xact time", high=1e11)
        _number(xact[1], "xact count", integer=True)
    buckets(data.get("buckets"))
    _check(isinstance(data.get("states"), dict), "states")
    for key, value in data["states"].items():
        _text(key, "state", optional=False)
        _number(value, "state count", integer=True)
    point = data.get("point")
    if point is not None:
        _check(isinstance(point, dict), "point")
        _check(point.get("t") == data["t"] and point.get("states") == data["states"], "point")
        for name in (
            "requests_per_s", "errors_5xx_per_s", "new_connections_per_s", "transactions_per_s",
        ):  # fmt: skip
            _number(point.get(name), name, optional=True)
    return data
