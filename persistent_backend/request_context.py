"""The path of the request being served (for leak warnings), as a context variable.

signals.py sets it at the request boundaries; the wrapper reads it.
"""

import contextvars

_current_path = contextvars.ContextVar("persistent_backend_path", default=None)


def current_path():
    """The path of the request this thread/task is serving, or None outside requests."""
    return _current_path.get()


def set_path(path):
    """The request serving ``path`` starts (None: it ended)."""
    _current_path.set(path)
