"""Names the daemon process that answered, so the load generator can tell processes apart."""

import os

HEADER = "X-Fault-Pid"


class ProcessIdMiddleware:
    """First in MIDDLEWARE: every answer (503 and 500 pages too) carries ``X-Fault-Pid``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response[HEADER] = str(os.getpid())
        return response
