"""Request boundaries: Django's request signals drive the registry and the lease info."""

from django.core.signals import request_finished, request_started
from django.db import connections

from persistent_backend import registry, request_context
from persistent_backend.base import DatabaseWrapper


def _path_of(environ, scope):
    if environ is not None:
        return (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    if scope is not None:
        return scope.get("root_path", "") + scope.get("path", "") or "/"
    return None


def _on_request_started(sender, environ=None, scope=None, **kwargs):
    request_context.set_path(_path_of(environ, scope))
    registry.on_request_started(sender)
    _reset_lease_info()


def _on_request_finished(sender, **kwargs):
    # Connections remember the path they were borrowed for, so the order of this receiver
    # and Django's close_old_connections does not matter (the test client reorders them).
    request_context.set_path(None)


def _reset_lease_info():
    """A new request starts: what current_connection_info() reports starts afresh."""
    for wrapper in connections.all(initialized_only=True):
        if isinstance(wrapper, DatabaseWrapper) and wrapper.persistent_lease_info is not None:
            record = wrapper.persistent_record
            if record is None:
                wrapper.persistent_lease_info = None
            else:
                # Still held (e.g. Django's test client never returns connections).
                wrapper.persistent_lease_info = {
                    **wrapper.persistent_lease_info,
                    "reused": True,
                    "uses": record.uses,
                }


request_started.connect(_on_request_started, dispatch_uid="persistent_backend.request_started")
request_finished.connect(_on_request_finished, dispatch_uid="persistent_backend.request_finished")
