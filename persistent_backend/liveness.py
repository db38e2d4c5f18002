"""Is an idle connection still alive? Answered without a round trip to the server.

1. libpq's own status (``PQstatus``) and the transaction status (``PQtransactionStatus``),
   both read from the client's memory.
2. A non-blocking ``poll()`` of the socket with a zero timeout. An idle connection has
   nothing to read; if its socket is readable the server closed it (EOF) or sent an
   error before closing (``terminating connection due to administrator command``,
   ``idle_session_timeout``, shutdown). The bytes are peeked (``MSG_PEEK``: libpq's state
   is untouched) and parsed as protocol messages to tell those apart from harmless
   asynchronous messages (NOTIFY, NOTICE, ParameterStatus).
3. Only if asked (``ping_after``): an empty query, one round trip, for connections idle
   long enough that a half-open TCP peer is a real possibility.

Works for psycopg2 and psycopg 3: both expose ``info.status``, ``info.transaction_status``,
``info.backend_pid`` and ``fileno()``.
"""

import ctypes
import select
import socket
import struct
from dataclasses import dataclass

CONNECTION_OK = 0
TRANSACTION_IDLE = 0
TRANSACTION_ACTIVE = 1
TRANSACTION_INTRANS = 2
TRANSACTION_INERROR = 3
TRANSACTION_UNKNOWN = 4
TRANSACTION_STATES_AT_REST = (TRANSACTION_IDLE, TRANSACTION_INTRANS, TRANSACTION_INERROR)

# Backend messages that may arrive on an idle connection without meaning it is dead.
_ASYNC_HARMLESS = {b"A", b"N", b"S"}  # NotificationResponse, NoticeResponse, ParameterStatus
_POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL
_PEEK_BYTES = 8192


@dataclass(frozen=True)
class Verdict:
    """What a probe concluded: alive, or why not (``reason``, ``detail`` for the logs)."""

    alive: bool
    reason: str = ""  # "terminated" | "closed" | "broken" | "ping_failed"
    detail: str = ""


ALIVE = Verdict(True)


class _PollFd(ctypes.Structure):
    """libc's ``struct pollfd``."""

    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def _poll_holding_gil():
    """libc's ``poll()`` called without releasing the GIL (``ctypes.PyDLL``), or None.

    ``select.poll().poll(0)`` releases the GIL around the system call, as every call that
    may block does. With a zero timeout it never blocks, but in a threaded daemon each
    release can hand the GIL to another thread and costs this one a wake-up and a wait to
    get it back, several times per request (docs/performance.md, "The probe gave the GIL
    away")."""
    try:
        poll = ctypes.PyDLL(None).poll
    except (OSError, AttributeError):  # no libc poll() to call (not a POSIX system)
        return None
    # No argtypes: called with a byref() and two small ints, ctypes' defaults are right
    # and cheaper per call than converting through declared types.
    return poll


_POLL = _poll_holding_gil()


_IS_PSYCOPG3 = {}  # connection class -> made by psycopg 3


def _is_psycopg3(raw):
    cls = type(raw)
    known = _IS_PSYCOPG3.get(cls)
    if known is None:
        known = any(k.__module__.partition(".")[0] == "psycopg" for k in cls.__mro__)
        _IS_PSYCOPG3[cls] = known
    return known


# psycopg 3's ``info.status`` builds an enum per call (microseconds, and checkout reads it
# each time): its ``pgconn`` answers the same libpq calls with plain ints.
def status_ok(raw):
    """libpq says the connection is usable (no I/O)."""
    try:
        if raw.closed:
            return False
        status = raw.pgconn.status if _is_psycopg3(raw) else raw.info.status
        return int(status) == CONNECTION_OK
    except Exception:
        return False


def transaction_status(raw):
    """``PQtransactionStatus`` as an int (no I/O); UNKNOWN if it cannot be read."""
    try:
        if _is_psycopg3(raw):
            return int(raw.pgconn.transaction_status)
        return int(raw.get_transaction_status())
    except Exception:
        return TRANSACTION_UNKNOWN


def fileno(raw):
    """The driver connection's socket, or -1 when it has none (closed, broken)."""
    try:
        return raw.fileno()
    except Exception:
        return -1


def ssl_in_use(raw):
    """Does the connection use TLS (then a readable socket may hold only TLS records)?"""
    try:
        info = raw.info
        if hasattr(info, "ssl_in_use"):
            return bool(info.ssl_in_use)
        return bool(raw.pgconn.ssl_in_use)
    except Exception:
        return False


def parse_backend_messages(data):
    """Classify peeked bytes: ("eof"|"error"|"harmless"|"unknown", detail)."""
    if not data:
        return "eof", "server closed the connection"
    pos = 0
    while pos < len(data):
        kind = data[pos : pos + 1]
        if len(data) - pos < 5:
            return ("harmless", "") if kind in _ASYNC_HARMLESS else ("unknown", "")
        (length,) = struct.unpack("!I", data[pos + 1 : pos + 5])
        if length < 4:
            return "unknown", ""
        body = data[pos + 5 : pos + 1 + length]
        if kind == b"E":
            return "error", _error_text(body)
        if kind not in _ASYNC_HARMLESS:
            return "unknown", ""
        pos += 1 + length
    return "harmless", ""


def _error_text(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode(errors="replace")
    message = fields.get(b"M", "error from server")
    code = fields.get(b"C")
    return f"{message} ({code})" if code else message


def socket_verdict(fd, ssl=False):
    """Zero-timeout poll of an idle connection's socket, then peek at what is waiting."""
    if fd < 0:
        return Verdict(False, "closed", "no socket")
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    try:
        events = poller.poll(0)
    except OSError as exc:
        return Verdict(False, "closed", f"poll failed: {exc}")
    if not events:
        return ALIVE
    mask = events[0][1]
    if mask & select.POLLNVAL:
        return Verdict(False, "closed", "socket is not open")
    if ssl:
        # Encrypted bytes cannot be parsed; an idle TLS connection has nothing to say.
        return Verdict(False, "closed", "unexpected data on an idle TLS connection")
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        return Verdict(False, "closed", f"socket unusable: {exc}")
    try:
        data = sock.recv(_PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return ALIVE if not mask & _POLL_BAD else Verdict(False, "closed", "socket error")
    except OSError as exc:
        return Verdict(False, "closed", f"socket error: {exc}")
    finally:
        sock.detach()  # the fd belongs to libpq: never close it here
    kind, detail = parse_backend_messages(data)
    if kind == "harmless":
        return ALIVE
    if kind == "error":
        return Verdict(False, "terminated", detail)
    if kind == "eof":
        return Verdict(False, "closed", detail)
    return Verdict(False, "closed", "unexpected bytes on an idle connection")


def probe(raw, ssl=False):
    """Zero-round-trip verdict for an idle connection (status, transaction, socket): the
    one-off form of ``Checks(raw, ssl).probe()``."""
    return Checks(raw, ssl).probe()


class Checks:
    """``probe()``, ``status()``, ``transaction_status()`` and ``socket_quiet()`` of one kept
    connection, bound once.

    The same answers as the module's functions, for the hot path: a kept connection is
    probed before every statement outside a transaction, so its driver is told apart and
    its socket's ``struct pollfd`` built once, when it is opened (a connection's socket
    never changes; a closed one is caught by libpq's status first). The zero-timeout
    ``poll()`` keeps the GIL (``_poll_holding_gil``). Only a readable socket, which is
    rare, goes the slow way (``socket_verdict`` peeks at it).
    """

    __slots__ = ("raw", "ssl", "_psycopg3", "_pollfd", "_pollfd_ref", "_poller")

    def __init__(self, raw, ssl=False):
        self.raw = raw
        self.ssl = ssl
        self._psycopg3 = _is_psycopg3(raw)
        self._pollfd = self._pollfd_ref = self._poller = None
        fd = fileno(raw)
        if fd < 0:
            return
        if _POLL is not None:
            self._pollfd = _PollFd(fd, select.POLLIN | select.POLLPRI, 0)
            self._pollfd_ref = ctypes.byref(self._pollfd)
        else:
            self._poller = select.poll()
            self._poller.register(fd, select.POLLIN | select.POLLPRI)

    def transaction_status(self):
        """``PQtransactionStatus`` as an int (no I/O); UNKNOWN if it cannot be read. libpq
        answers UNKNOWN for a connection it reports as bad, so IDLE also means usable."""
        try:
            if self._psycopg3:
                return int(self.raw.pgconn.transaction_status)
            return self.raw.get_transaction_status()
        except Exception:
            return TRANSACTION_UNKNOWN

    def status(self):
        """The transaction status, or None when libpq reports the connection as bad (no
        I/O): ``status_ok()`` and ``transaction_status()`` in one call."""
        raw = self.raw
        try:
            if self._psycopg3:
                pgconn = raw.pgconn
                if not raw.closed and pgconn.status == CONNECTION_OK:
                    return int(pgconn.transaction_status)
            elif not raw.closed and raw.info.status == CONNECTION_OK:
                return raw.get_transaction_status()
        except Exception:
            pass
        return None

    def in_transaction(self):
        """Is the session inside a transaction block (or its status unknown)? No I/O."""
        return self.transaction_status() != TRANSACTION_IDLE  # unknown: nothing moves

    def socket_quiet(self):
        """Nothing waits on the socket (a zero-timeout ``poll()``): the common case. False
        (readable, or the poll failed): ``probe()`` says whether it is still alive."""
        if self._pollfd_ref is not None:
            return _POLL(self._pollfd_ref, 1, 0) == 0  # -1, an error: not quiet
        if self._poller is not None:
            try:
                return not self._poller.poll(0)
            except OSError:
                return False
        return False

    def probe(self):
        """Zero-round-trip verdict for an idle connection (status, transaction, socket)."""
        tx = self.status()
        if tx is None:
            return Verdict(False, "broken", "libpq reports the connection as bad")
        if tx not in TRANSACTION_STATES_AT_REST:
            return Verdict(False, "broken", f"transaction status {tx}")
        if self.socket_quiet():
            return ALIVE
        return socket_verdict(fileno(self.raw), self.ssl)  # the slow way says why


def ping(raw, is_psycopg3):
    """One round trip: an empty query (the server answers EmptyQueryResponse)."""
    try:
        if is_psycopg3:
            raw.execute("")
        else:
            import psycopg2

            with raw.cursor() as cursor:
                try:
                    cursor.execute(";")
                except psycopg2.ProgrammingError as exc:
                    # psycopg2 reports the server's EmptyQueryResponse this way.
                    if "empty query" not in str(exc):
                        raise
        if not raw.autocommit and transaction_status(raw) != TRANSACTION_IDLE:
            raw.rollback()
    except Exception as exc:
        return Verdict(False, "ping_failed", str(exc).strip().splitlines()[0] if str(exc) else "")
    return ALIVE if status_ok(raw) else Verdict(False, "ping_failed", "bad status after ping")
