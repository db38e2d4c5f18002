"""Turn an unreachable database into a clear 503 instead of a 500 page.

OperationalError covers refused/terminated connections, connect timeouts and an
exhausted pool; InterfaceError covers a connection already closed under the driver.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError
from django.template.loader import render_to_string

logger = logging.getLogger("config.database")
DATABASE_ERRORS = (OperationalError, InterfaceError)


def database_unavailable_response(request, exception):
    """The 503 page (``Retry-After: 5``), with the reason logged, never shown."""
    reason = (str(exception).strip().splitlines() or [type(exception).__name__])[0]
    logger.warning("503 for %s: database unavailable: %s", request.path, reason)
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = "5"
    return response


class DatabaseUnavailableMiddleware:
    """Answer 503 (with ``Retry-After``) when a view fails because PostgreSQL is unreachable."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        """A database error becomes the 503 page; anything else goes on to Django."""
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable_response(request, exception)
        return None


def server_error(request):
    """handler500: the same 503 when the failure came from outside a view (e.g. a middleware)."""
    exception = sys.exc_info()[1]
    if isinstance(exception, DATABASE_ERRORS):
        return database_unavailable_response(request, exception)
    return HttpResponseServerError(render_to_string("500.html"))
