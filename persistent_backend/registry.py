"""The stores of this process (one per alias), fork safety, housekeeping and shutdown."""

import atexit
import itertools
import logging
import os
import threading
import weakref

from django.conf import settings
from django.db.backends.base.base import NO_DB_ALIAS

from persistent_backend import environment
from persistent_backend.options import Options
from persistent_backend.record import neutralize
from persistent_backend.stores import Store

logger = logging.getLogger("persistent_backend")

_lock = threading.Lock()
_stores = {}  # alias -> Store (the current one for the alias' current settings)
_retired = []  # retired stores with connections still open (in use, or abandoned)
_wrappers = weakref.WeakSet()  # every persistent DatabaseWrapper (to neutralize on fork)
_slot_ids = itertools.count(1)
_housekeeper = None


def settings_key(wrapper):
    """What a kept connection depends on: a store is only reused for identical settings.

    A store keeps this with its own copy of OPTIONS' containers (``_copied``); every
    checkout compares it with ``_current_key()``, which copies nothing: an in-place change
    of OPTIONS (tests do that) still shows, and no repr is built per request.
    """
    key = _current_key(wrapper)
    return (*key[:6], _copied(key[6]), *key[7:])


def _current_key(wrapper):
    s = wrapper.settings_dict
    return (
        s.get("NAME"),
        s.get("USER"),
        s.get("PASSWORD"),
        s.get("HOST"),
        s.get("PORT"),
        s.get("AUTOCOMMIT"),
        s.get("OPTIONS"),
        wrapper.timezone_name,
        settings.USE_TZ,
    )


def _copied(value):
    """Containers copied all the way down, other values by reference (compared with ==)."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_copied(item) for item in value)
    return value


def store_for(wrapper, create=True):
    """The store serving ``wrapper``'s alias, created on first use (None for NO_DB_ALIAS)."""
    if wrapper.alias == NO_DB_ALIAS:
        return None
    pid = os.getpid()
    key = _current_key(wrapper)
    if _retired:
        drain_retired()
    store = _stores.get(wrapper.alias)
    if store is not None and store.key == key and store.owner_pid == pid and not store.retired:
        return store
    if not create:
        return store if store is not None and store.owner_pid == pid else None
    with _lock:
        store = _stores.get(wrapper.alias)
        if store is not None and store.key == key and store.owner_pid == pid:
            if not store.retired:
                return store
        new = new_store(wrapper)
        _stores[wrapper.alias] = new
    if store is not None and store.owner_pid == pid:
        _retire(store)
    logger.log(
        logging.INFO if new.shape.server != "other" else logging.DEBUG,
        "database '%s' in pid %d: %s mode (%s)%s",
        wrapper.alias,
        pid,
        new.mode,
        new.mode_reason,
        f", max_size {new.max_size}" if new.max_size else "",
    )
    if new.housekeeping:
        ensure_housekeeper()
    return new


def new_store(wrapper):
    """A store for ``wrapper``'s settings (not registered: ``store_for`` does that)."""
    options = Options.from_settings(wrapper.settings_dict)
    shape = environment.detect_shape(options)
    mode, reason = environment.resolve_mode(options, shape)
    max_size = environment.default_max_size(options, shape)
    return Store(
        wrapper.alias, settings_key(wrapper), options, mode, max_size, shape, reason,
        is_psycopg3=wrapper.is_psycopg3,
    )  # fmt: skip


def stores():
    """This process's stores (those inherited through fork excluded)."""
    pid = os.getpid()
    return [store for store in list(_stores.values()) if store.owner_pid == pid]


def track_wrapper(wrapper):
    """Register a DatabaseWrapper; returns its slot id (its connection in thread mode)."""
    _wrappers.add(wrapper)
    slot = next(_slot_ids)
    weakref.finalize(wrapper, _slot_gone, wrapper.alias, slot)
    return slot


def _slot_gone(alias, slot):
    # Runs from the garbage collector: no lock may be taken here.
    for store in [_stores.get(alias), *_retired]:
        if store is not None and store.alias == alias:
            store.orphan_slot(slot)


def _retire(store):
    """Retire ``store``; its connections still open are closed when returned, and the
    ones a finished thread abandoned by ``drain_retired()`` (next checkout, housekeeping)."""
    closed = store.retire()
    if not store.settled():
        with _lock:
            if store not in _retired:
                _retired.append(store)
    return closed


def drain_retired():
    """Close what retired stores still hold for threads that ended; forget settled ones."""
    for store in list(_retired):
        if store.owner_pid != os.getpid():
            continue
        store.housekeep()
        if store.settled():
            with _lock:
                if store in _retired:
                    _retired.remove(store)


def on_request_started(sender):
    """The first request from an ASGI handler: ``auto`` stores in thread mode become pools."""
    if environment.note_request_handler(sender):
        with _lock:
            switch = [s for s in stores() if s.options.mode == "auto" and s.mode == "thread"]
            for store in switch:
                del _stores[store.alias]
        for store in switch:
            _retire(store)


def close_all():
    """Close every idle kept connection of this process (busy ones close when returned)."""
    closed = 0
    for store in stores():
        closed += store.close_idle()
    return closed


def reset():
    """Forget every store of this process after closing its idle connections (tests)."""
    closed = 0
    with _lock:
        current = stores()
        for store in current:
            _stores.pop(store.alias, None)
    for store in current:
        closed += _retire(store)
    return closed


# -- fork safety ---------------------------------------------------------------------------
def _after_fork_in_child():
    """In a forked child: the parent's connections are not ours. Neutralize, start afresh.

    New lock and stores (the old lock may have been held by a parent thread at fork time);
    every inherited socket is pointed at /dev/null so nothing the child does can reach the
    parent's sessions. Django connection objects still holding one reconnect on next use.
    """
    global _lock, _stores, _retired, _housekeeper
    inherited = list(_stores.values()) + _retired
    _lock = threading.Lock()
    _stores = {}
    _retired = []
    _housekeeper = None
    for store in inherited:
        for record in list(store.records):
            neutralize(record.raw)
    for wrapper in list(_wrappers):
        wrapper.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- housekeeping --------------------------------------------------------------------------
class Housekeeper(threading.Thread):
    """Closes idle connections past ``idle_timeout``/``max_age`` even without traffic."""

    def __init__(self):
        super().__init__(name="persistent_backend-housekeeping", daemon=True)
        self.stopping = False
        self.wakeup = threading.Event()  # set: recompute the interval (new store) or stop
        self.pid = os.getpid()

    def run(self):
        """Sweep every store at its ``housekeeping`` interval until stopped or forked."""
        while not self.stopping and os.getpid() == self.pid:
            intervals = [s.housekeeping for s in stores() if s.housekeeping]
            if self.wakeup.wait(min(intervals, default=30.0)):
                self.wakeup.clear()
                continue
            drain_retired()
            for store in stores():
                if store.housekeeping:
                    try:
                        store.housekeep()
                    except Exception:
                        logger.exception("housekeeping of '%s' failed", store.alias)

    def stop(self):
        """Ask the thread to end (it wakes up at once)."""
        self.stopping = True
        self.wakeup.set()


def ensure_housekeeper():
    """Start the background thread if it is not running; else wake it (new interval)."""
    global _housekeeper
    with _lock:
        if _housekeeper is None or not _housekeeper.is_alive():
            _housekeeper = Housekeeper()
            _housekeeper.start()
        else:
            _housekeeper.wakeup.set()


def _at_exit():
    if _housekeeper is not None:
        _housekeeper.stop()
    close_all()


atexit.register(_at_exit)
