"""The web processes on this host (psutil) and the deployment this process runs in."""

import os
import sys
import threading
import time

import psutil
from django.conf import settings

from persistent_backend.deployment import host_part, persistent_options


def _host():
    """The host part persistent_backend puts in application_name: its ``hostname`` option
    (``PERSISTENT_HOSTNAME``, e.g. several simulated hosts on one machine), else the short
    host name."""
    persistent = persistent_options(settings.DATABASES.get("default"))
    return host_part(persistent.get("hostname"))


HOST = _host()

# psutil.Process objects kept between polls: one per pid, dropped when the pid goes away.
_known = {}
_known_lock = threading.Lock()


def mod_wsgi_module():
    """mod_wsgi's embedded module inside Apache, else None (the pip package has no API)."""
    try:
        import mod_wsgi
    except ImportError:
        return None
    return mod_wsgi if hasattr(mod_wsgi, "process_group") else None


def process(pid):
    """A kept psutil.Process for pid, or None if it does not run (pid reuse is detected)."""
    with _known_lock:
        proc = _known.get(pid)
        if proc is not None and not proc.is_running():
            del _known[pid]
            proc = None
        if proc is None:
            try:
                proc = _known[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return proc


def display_name(proc):
    """argv[0] of ``proc`` (mod_wsgi's display-name), None if it cannot be read."""
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    return cmdline[0].strip() if cmdline else None


def identity():
    """What a process publishes about itself: parent, start time, group, server shape."""
    me = psutil.Process()
    info = {
        "host": HOST,
        "pid": me.pid,
        "ppid": os.getppid(),
        "started": me.create_time(),
        "group": display_name(me),
    }
    info.update(server_shape())
    return info


def server_shape():
    """Server kind, processes x threads, as this process sees them."""
    mw = mod_wsgi_module()
    if mw is not None:
        return {
            "server": "mod_wsgi daemon" if mw.process_group else "mod_wsgi embedded",
            "process_group": mw.process_group or None,
            "processes": mw.maximum_processes,
            "threads": mw.threads_per_process,
        }
    if any(arg.endswith("runserver") for arg in sys.argv[1:2]):
        return {"server": "runserver", "process_group": None, "processes": 1, "threads": None}
    return {"server": "other", "process_group": None, "processes": None, "threads": None}


SIBLINGS_TTL = 5.0
_siblings = (None, 0.0, frozenset())  # (pid, monotonic time, pids)


def sibling_pids():
    """This process and the daemons of its process group (same parent, same display name).

    Listing a parent's children reads every /proc/<pid>/stat of the host, so the answer
    is kept for a few seconds; a process that died since is dropped by its caller.
    """
    global _siblings
    pid, when, pids = _siblings
    if pid == os.getpid() and time.monotonic() - when < SIBLINGS_TTL:
        return set(pids)
    me = psutil.Process()
    pids = {me.pid}
    if mod_wsgi_module() is not None:
        name = display_name(me)
        try:
            children = me.parent().children()
        except (psutil.Error, AttributeError):
            children = []
        pids.update(child.pid for child in children if display_name(child) == name)
    _siblings = (me.pid, time.monotonic(), frozenset(pids))
    return pids


def is_running(pid, started):
    """The process pid runs and is the one that started at ``started`` (not a reused pid)."""
    proc = process(pid)
    if proc is None:
        return False
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.Error:
        return False


def exists(pid):
    """Whether a process with this pid runs (no figures of it are read)."""
    return psutil.pid_exists(pid)


def owned_by(pid, uid):
    """The process pid runs with effective user ``uid`` (a dead pid: True, judged later)."""
    try:
        return psutil.Process(pid).uids().effective == uid
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def inspect(pid):
    """RSS, CPU seconds, OS threads, start time of one local process, or None if gone."""
    proc = process(pid)
    if proc is None:
        return None
    try:
        with proc.oneshot():
            cpu = proc.cpu_times()
            return {
                "rss": proc.memory_info().rss,
                "cpu_seconds": cpu.user + cpu.system,
                "os_threads": proc.num_threads(),
                "started": proc.create_time(),
                "status": proc.status(),
                "user": proc.username(),
            }
    except psutil.Error:
        return None


def forget_missing(pids):
    """Drop kept Process objects of pids no longer looked at."""
    with _known_lock:
        for pid in set(_known) - set(pids):
            del _known[pid]


def deployment(backend_stats):
    """The deployment as detected by the process answering: server, shape, backend mode."""
    db = settings.DATABASES["default"]
    shape = server_shape()
    default = (backend_stats or {}).get("default") or {}
    return {
        **shape,
        "host": HOST,
        "pid": os.getpid(),
        "engine": db["ENGINE"],
        "backend_mode": default.get("mode"),
        "conn_max_age": db.get("CONN_MAX_AGE"),
    }
