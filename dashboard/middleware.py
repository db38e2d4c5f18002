"""Counts every request of every process (status, latency); first in MIDDLEWARE."""

import time

from dashboard import metrics


def uncounted(view):
    """Mark a dashboard view: its polls are not the site's traffic and stay out of the counts."""
    view.dashboard_uncounted = True
    return view


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        # Once per process that loads the site (mod_wsgi daemon, runserver, test client):
        # starts mod_wsgi's metrics recording and this process's publisher.
        metrics.start_process()

    def __call__(self, request):
        recorder = metrics.recorder
        slot = recorder.begin()
        start = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            match = getattr(request, "resolver_match", None)
            counted = not getattr(getattr(match, "func", None), "dashboard_uncounted", False)
            recorder.end(slot, time.perf_counter() - start, status, counted)
