"""The page, its JSON snapshot, and /metrics, with who may see what.

- page: anonymous -> the admin login; logged in but not staff -> 403.
- JSON: anonymous or not staff -> a JSON 403 (a poller must not follow a login redirect);
  query texts only for superusers; bad parameters -> a JSON 400.
- /metrics: a staff session, or ``Authorization: Bearer $DASHBOARD_METRICS_TOKEN``.
"""

import hmac
import logging
import math
import secrets

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard import conf, prometheus, snapshot
from dashboard.middleware import uncounted

logger = logging.getLogger("dashboard")
DATABASE_ERRORS = (OperationalError, InterfaceError)
POLL_SECONDS = 2
WINDOW_RANGE = (10, 300)
# The page runs only its own script and style (carrying this response's nonce) and talks
# only to its own origin: markup that slipped into a figure could not run or send anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _is_staff(user):
    return user.is_authenticated and user.is_active and user.is_staff


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _json_error(status, error, message, **extra):
    response = JsonResponse({"error": error, "message": message, **extra}, status=status)
    if status == 503:
        response["Retry-After"] = "5"
    return response


@uncounted
@never_cache
@require_GET
def index(request):
    """The page: login for anonymous users, 403 for non-staff, first paint from the snapshot."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    if not _is_staff(request.user):
        raise PermissionDenied("The dashboard is for staff users.")
    snap = snapshot.build(include_queries=request.user.is_superuser)
    nonce = secrets.token_urlsafe(18)
    context = {
        "snap": snap,
        "csp_nonce": nonce,
        "poll_seconds": POLL_SECONDS,
        "api_url": reverse("dashboard:snapshot"),
        "login_url": reverse("admin:login") + "?next=" + request.path,
    }
    response = render(request, "dashboard/index.html", context)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(nonce=nonce)
    return response


def parse_params(query):
    """The snapshot's parameters: ``since`` (epoch seconds) and ``window`` (seconds)."""
    unknown = sorted(set(query) - {"since", "window"})
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}; use since, window")
    params = {}
    if "since" in query:
        try:
            since = float(query["since"])
        except ValueError:
            since = math.nan
        if not math.isfinite(since) or since < 0:
            raise ValueError("since must be a time in seconds since the epoch (a number >= 0)")
        params["since"] = since
    if "window" in query:
        low, high = WINDOW_RANGE
        value = query["window"]
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"window must be a whole number of seconds from {low} to {high}")
        params["window"] = int(value)
    return params


@uncounted
@never_cache
@require_GET
def api_snapshot(request):
    """The snapshot as JSON for the page's polls; errors as JSON too (400, 403, 503), never HTML."""
    try:
        user = request.user
        authenticated = user.is_authenticated
    except DATABASE_ERRORS as exc:
        # Not known to be staff: the detail goes to the log only.
        logger.warning("dashboard: database unavailable: %s", _first_line(exc))
        return _json_error(503, "database_unavailable", "The database is unavailable.")
    if not authenticated:
        login = reverse("admin:login") + "?next=" + reverse("dashboard:index")
        return _json_error(403, "not_authenticated", "Log in as a staff user.", login_url=login)
    if not _is_staff(user):
        return _json_error(403, "forbidden", "The dashboard is for staff users.")
    try:
        params = parse_params(request.GET)
    except ValueError as exc:
        return _json_error(400, "bad_request", str(exc))
    try:
        snap = snapshot.build(include_queries=user.is_superuser, **params)
    except DATABASE_ERRORS as exc:
        return _json_error(503, "database_unavailable", _first_line(exc))
    return JsonResponse(snap)


def _token_matches(header):
    token = conf.get("DASHBOARD_METRICS_TOKEN")
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _unauthorized():
    response = HttpResponse("credentials required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@uncounted
@never_cache
@require_GET
def prometheus_metrics(request):
    """/metrics: a bearer token (DASHBOARD_METRICS_TOKEN) or a staff session."""
    header = request.headers.get("Authorization", "")
    if header:
        if not _token_matches(header):
            return _unauthorized()
    else:
        try:
            user = request.user
            authenticated = user.is_authenticated
        except DATABASE_ERRORS:
            return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
        if not authenticated:
            return _unauthorized()
        if not _is_staff(user):
            raise PermissionDenied("Staff or the metrics token only.")
    body = prometheus.render(snapshot.build(record=False))
    return HttpResponse(body, content_type=prometheus.CONTENT_TYPE)
