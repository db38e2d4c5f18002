"""Request boundaries: Django's request signals start and end the request context."""

from django.core.signals import request_finished, request_started

from persistent_backend import registry, request_context


def _path_of(environ, scope):
    if environ is not None:
        return (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    if scope is not None:
        return scope.get("root_path", "") + scope.get("path", "") or "/"
    return None


def _on_request_started(sender, environ=None, scope=None, **kwargs):
    # A new request: what current_connection_info() reports starts afresh (leases know
    # the request that borrowed them: stats.py).
    request_context.start(_path_of(environ, scope))
    registry.on_request_started(sender)


def _on_request_finished(sender, **kwargs):
    # Connections remember the path they were borrowed for, so the order of this receiver
    # and Django's close_old_connections does not matter (the test client reorders them).
    request_context.end()


request_started.connect(_on_request_started, dispatch_uid="persistent_backend.request_started")
request_finished.connect(_on_request_finished, dispatch_uid="persistent_backend.request_finished")
