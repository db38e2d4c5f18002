"""What runs this process (mod_wsgi daemon, runserver, ASGI, other) and the ``auto`` mode."""

import math
import sys
from dataclasses import dataclass

from persistent_backend import deployment

_asgi_seen = False
_wsgi_senders = set()  # request_started senders known not to be ASGI handlers


@dataclass(frozen=True)
class ServerShape:
    """How requests reach this process: ``server`` and, when known, processes x threads."""

    server: str  # "mod_wsgi" | "runserver" | "asgi" | "other"
    processes: int | None = None
    threads: int | None = None

    @property
    def threaded(self):
        """Can two requests of this process run at once (so need two connections)?"""
        if self.server == "asgi" or (self.server == "runserver" and self.threads is None):
            return True  # a thread (or task) per request, unbounded
        return self.threads is not None and self.threads > 1


def mod_wsgi_shape():
    """(processes, threads) of the mod_wsgi daemon running this interpreter, else None.

    Inside Apache the ``mod_wsgi`` module is the C extension with ``threads_per_process``;
    outside, ``import mod_wsgi`` finds only the pip package (no such attribute).
    """
    module = sys.modules.get("mod_wsgi")
    if module is None:
        try:
            import mod_wsgi as module
        except ImportError:
            return None
    threads = getattr(module, "threads_per_process", None)
    if threads is None:
        return None
    return int(getattr(module, "maximum_processes", 1) or 1), int(threads)


def note_request_handler(handler_class):
    """Called on ``request_started``: remember that an ASGI handler serves this process."""
    global _asgi_seen
    if _asgi_seen or not isinstance(handler_class, type) or handler_class in _wsgi_senders:
        return False
    from django.core.handlers.asgi import ASGIHandler

    if issubclass(handler_class, ASGIHandler):
        _asgi_seen = True
        return True
    _wsgi_senders.add(handler_class)  # looked at once per class, not per request
    return False


def _runserver_threads(argv):
    if len(argv) > 1 and argv[1] == "runserver":
        return 1 if "--nothreading" in argv else None
    return 0


def detect_shape(options=None, argv=None):
    """The server shape, from mod_wsgi itself, runserver's arguments, or the option hints."""
    shape = mod_wsgi_shape()
    if shape is not None:
        return ServerShape("mod_wsgi", *shape)
    if _asgi_seen:
        return ServerShape("asgi", getattr(options, "processes", None), None)
    argv = sys.argv if argv is None else argv
    runserver = _runserver_threads(argv)
    if runserver != 0:
        # runserver is threaded unless --nothreading (a thread per request, unbounded).
        return ServerShape("runserver", 1, runserver)
    return ServerShape(
        "other", getattr(options, "processes", None), getattr(options, "threads", None)
    )


def resolve_mode(options, shape):
    """The mode ``auto`` stands for in this process, with a reason for the log."""
    if options.mode != "auto":
        return options.mode, "configured"
    if shape.server == "mod_wsgi":
        mode = deployment.mode_for_threads(shape.threads)
        return mode, f"auto: mod_wsgi daemon with {shape.threads} thread(s) per process"
    if shape.server == "asgi":
        return "pool", "auto: ASGI (a thread per request would leak connections)"
    return "thread", "auto: not under mod_wsgi or ASGI"


def default_max_size(options, shape):
    """Pool bound: ``max_size``, else the daemon's threads, else the ``threads`` hint.

    With ``lend: "transaction"`` a thread holds a connection only while a statement or a
    transaction runs, a small part of a request: the default bound is a quarter of the
    threads, but up to 4 when that is at most half of them (``lend_max_size``), so the
    pool cannot grow to one connection per thread on a burst and keep them
    (docs/backend.md, "Lending per transaction").
    """
    if options.max_size is not None:
        return options.max_size
    threads = shape.threads or options.threads or 10
    if options.lend == "transaction":
        return lend_max_size(threads)
    return threads


def lend_max_size(threads):
    """The lending pool's default bound for ``threads`` threads (8: 4, 16: 4, 32: 8).

    A quarter of the threads is the aim, but under the GIL a thread that holds a lent
    connection can wait several switch intervals before it gives it back, and with 2
    connections the threads of a 1x8 daemon queue for them (``./deploy.sh bench --set
    performance``). So: at least 2, at least a quarter, and 4 where 4 is no more than
    half of the threads."""
    return max(LEND_MIN_SIZE, min(LEND_SMALL_POOL, math.ceil(threads / 2)), math.ceil(threads / 4))


LEND_MIN_SIZE = 2
LEND_SMALL_POOL = 4


DEFAULT_HOUSEKEEPING = 30.0


def housekeeping_interval(options, shape):
    """Seconds between background sweeps, or None for none.

    By default only web servers get the background thread: elsewhere (management commands,
    workers that fork, tests) idle connections are swept when a connection is returned.
    """
    if options.housekeeping is not None:
        return options.housekeeping or None
    return DEFAULT_HOUSEKEEPING if shape.server != "other" else None
