"""Fault 8: bad input over the real stack (Apache, mod_wsgi, the site, DEBUG off).

Malformed paths and ids, huge query strings and headers, bad dashboard API parameters,
anonymous and non-staff access to the dashboard, its JSON and /metrics, and CSRF on every
state-changing endpoint: each gets its proper status (a 4xx, or the documented redirect)
and never a traceback or a 5xx. Every case runs in the normal suite.
"""

import os
import re
import shutil
import socket
import tempfile
from urllib.parse import quote

import pytest
from django.test import Client

from harness.load import request
from harness.modwsgi import ModWsgiServer
from harness.site import site_environment
from tests.faults import harness

PASSWORD = "faults-bad-input-password-7"
API = "/dashboard/api/snapshot"


@pytest.fixture(scope="module")
def bad_input_server(test_db_url):
    """One server for the whole module: the site as in production (no test views)."""
    work = tempfile.mkdtemp(prefix="site-bad-input-")
    server = ModWsgiServer(
        work,
        site_environment(
            test_db_url, os.environ["DJANGO_SECRET_KEY"], DJANGO_VAR_DIR=work + "/var"
        ),
        processes=1,
        threads=4,
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def site(bad_input_server, django_user_model, demo_data):
    """The server, and session cookies of a staff user and of a plain user.

    Transactional tests flush the database after each test: users and sessions are made
    again for each one (the server keeps running).
    """
    users = {}
    roles = (("bad-input-admin", True, True), ("bad-input-staff", True, False))
    for name, staff, superuser in (*roles, ("bad-input-visitor", False, False)):
        user = django_user_model.objects.create_user(
            name, password=PASSWORD, is_staff=staff, is_superuser=superuser
        )
        client = Client()
        client.force_login(user)
        users[name] = f"sessionid={client.cookies['sessionid'].value}"
    return bad_input_server, users


LEAK_SIGNS = harness.TRACEBACK_SIGNS + ("SECRET_KEY", "psycopg", "django/")


def problems(result, expected, what):
    """What is wrong with an answer: not the expected status, or a crash's trace in it."""
    found = []
    if result.status not in expected:
        found.append(f"{what}: {result.status} {result.error} {result.text[:200]!r}")
    found += [f"{what}: {sign!r} in the answer" for sign in LEAK_SIGNS if sign in result.text]
    return found


def check(result, expected, what):
    found = problems(result, expected, what)
    assert not found, found


def check_all(cases):
    """``cases``: (result, expected statuses, label); every problem reported at once."""
    found = [
        problem for result, expected, what in cases for problem in problems(result, expected, what)
    ]
    assert not found, "\n".join(found)


def raw(server, data, timeout=10):
    """Send raw bytes; return (status, whole answer) of the first response line."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    answer = b"".join(chunks).decode(errors="replace")
    match = re.match(r"HTTP/1\.[01] (\d{3})", answer)
    return (int(match.group(1)) if match else 0), answer


# -- malformed paths and ids ------------------------------------------------------------
PATHS = [
    ("/items/abc/", {404}),
    ("/items/-1/", {404}),
    ("/items/0/", {404}),
    ("/items/1.5/", {404}),
    ("/items/9223372036854775808/", {404}),  # one past bigint
    ("/items/" + "9" * 200 + "/", {404}),
    ("/items/%D9%A3/", {404}),  # ARABIC-INDIC DIGIT THREE: not a [0-9] digit
    ("/items/%00/", {400, 404}),
    ("/items/%FF%FE/", {400, 404}),  # not UTF-8
    ("/items/1%2F2/", {404}),  # an encoded slash (Apache refuses them)
    ("/items/1/%2e%2e/%2e%2e/etc/passwd", {400, 404}),
    ("/../../etc/passwd", {400, 404}),
    ("/nope/", {404}),
    ("/items/1", {301}),  # APPEND_SLASH: the documented redirect
    ("/admin/catalog/item/abc/change/", {302}),  # anonymous: the admin login first
    ("/" + "a" * 2000, {403, 404}),  # Apache: a file name too long for its htdocs walk
    ("/" + "a" * 9000, {414}),  # past Apache's LimitRequestLine (8190)
    ("/static/../config/settings.py", {400, 404}),
    ("/%C0%AE%C0%AE/etc/passwd", {400, 404}),  # overlong UTF-8 dots
]


def test_malformed_paths(site):
    server, _ = site
    check_all([(request(server.url, path), expected, path[:60]) for path, expected in PATHS])


def test_doubled_slash_is_merged_by_apache(site):
    """``/items//<id>/`` is served as ``/items/<id>/`` (ids depend on earlier flushes)."""
    from catalog.models import Item

    server, _ = site
    item_id = Item.objects.order_by("id").values_list("id", flat=True).first()
    check(request(server.url, f"/items//{item_id}/"), {200}, "/items//<id>/")


def test_bad_admin_ids(site):
    server, users = site
    cookie = {"Cookie": users["bad-input-admin"]}
    for path in ["/admin/catalog/item/abc/change/", "/admin/catalog/item/99999999999/change/"]:
        result = request(server.url, path, headers=cookie)
        # The admin answers an unknown or malformed id with a redirect to its index and a
        # message ("... doesn't exist. Perhaps it was deleted?"): never a 500.
        check(result, {302}, path)
        assert result.headers["location"] == "/admin/", result.headers
    # Staff without permissions on the model: 403.
    result = request(server.url, path, headers={"Cookie": users["bad-input-staff"]})
    check(result, {403}, "staff without permission")


# -- huge query strings and headers -----------------------------------------------------
def test_huge_query_strings(site):
    server, users = site
    staff = {"Cookie": users["bad-input-staff"]}
    cases = [
        ("/?q=" + "a" * 7000, {}, {200}),  # pages ignore parameters they do not use
        ("/items/1/?" + "&".join(f"p{i}=x" for i in range(900)), {}, {200, 404}),
        ("/?q=" + "a" * 9000, {}, {414}),  # past LimitRequestLine
        ("/healthz?" + "x" * 8000, {}, {200}),
        # The snapshot reads its parameters: more than DATA_UPLOAD_MAX_NUMBER_FIELDS -> 400.
        (API + "?" + "&".join(f"w{i}=1" for i in range(1001)), staff, {400}),
        (API + "?since=" + "9" * 7000, staff, {400}),
    ]
    check_all(
        [(request(server.url, path, headers=h), expected, path[:60]) for path, h, expected in cases]
    )


def test_malformed_requests(site):
    server, _ = site
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    cases = [
        (b"GET /items/1/ HTTP/1.1\r\n" + host + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", {400}),
        (b"GET /items/1/ HTTP/1.1\r\n" + host + b"Content-Length: abc\r\n\r\n", {400}),
        (b"POST /admin/login/ HTTP/1.1\r\n" + host + b"Content-Length: 20000000\r\n\r\n", {413}),
        (b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", {400}),  # DisallowedHost
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:99999999\r\n\r\n", {400}),
        (b"GET / HTTP/1.1\r\n\r\n", {400}),  # HTTP/1.1 without Host
        (b"GET /\x00 HTTP/1.1\r\n" + host + b"\r\n", {400, 404}),
        (b"BREW / HTTP/1.1\r\n" + host + b"\r\n", {403, 405, 501}),
        (b"GARBAGE\r\n\r\n", {400}),
    ]
    found = []
    for data, expected in cases:
        status, answer = raw(server, data)
        if status not in expected or any(sign in answer for sign in LEAK_SIGNS):
            found.append((data[:60], status, answer[:200]))
    assert not found, found


# -- the dashboard, its JSON and /metrics ---------------------------------------------
BAD_API_PARAMETERS = [
    "?since=inf",
    "?since=-inf",
    "?since=1e400",
    "?since=",
    "?since=0x10",
    "?since=%FF",
    "?window=",
    "?window=0",
    "?window=301",
    "?window=-10",
    "?window=10.5",
    "?window=%C2%B2",  # SUPERSCRIPT TWO: isdigit() but not int()
    "?window=" + "9" * 5000,
    "?window=10&window=abc",  # the last value counts
    "?since=1&format=csv",
    "?" + quote("<script>") + "=1",
]


def test_bad_dashboard_parameters_are_json_400(site):
    server, users = site
    staff = {"Cookie": users["bad-input-staff"]}
    for query in BAD_API_PARAMETERS:
        result = request(server.url, API + query, headers=staff)
        check(result, {400}, query)
        assert result.headers["content-type"] == "application/json", query
        assert '"error": "bad_request"' in result.text, (query, result.text[:300])
        # The message may quote the parameter name; as JSON with nosniff it is never HTML.
        assert result.headers["x-content-type-options"] == "nosniff", query
    assert request(server.url, API + "?window=30", headers=staff).status == 200


def test_dashboard_access_over_http(site, settings):
    server, users = site
    anonymous, visitor, staff = (
        {},
        {"Cookie": users["bad-input-visitor"]},
        {"Cookie": users["bad-input-staff"]},
    )
    expectations = [
        # (path, who, status, what the answer must say)
        ("/dashboard/", anonymous, 302, None),
        (API, anonymous, 403, '"error": "not_authenticated"'),
        ("/metrics", anonymous, 401, "credentials required"),
        ("/dashboard/", visitor, 403, "You do not have access"),
        (API, visitor, 403, '"error": "forbidden"'),
        ("/metrics", visitor, 403, "You do not have access"),
        ("/admin/", visitor, 302, None),
        ("/dashboard/", staff, 200, 'id="processes"'),
        (API, staff, 200, '"version": 1'),
        ("/metrics", staff, 200, "site_http_requests_total"),
    ]
    for path, who, status, phrase in expectations:
        result = request(server.url, path, headers=who)
        check(result, {status}, f"{path} as {who or 'anonymous'}")
        if phrase:
            assert phrase in result.text, (path, result.text[:300])
        if status == 302:
            assert result.headers["location"].startswith("/admin/login/"), result.headers
    # A bearer token when none is configured, a wrong scheme, a wrong token: all 401.
    for header in ["Bearer ", "Bearer anything", "Basic YWRtaW46YWRtaW4=", "bearer"]:
        result = request(server.url, "/metrics", headers={"Authorization": header})
        check(result, {401}, header)
    # Query texts are for superusers only: a staff user's JSON has none.
    snap = request(server.url, API, headers=staff)
    assert '"queries_visible": false' in snap.text


# -- CSRF on every state-changing endpoint --------------------------------------------
def state_changing_endpoints():
    """Every URL that takes a POST: the admin's (login, logout, password change, and the
    add/change/delete views of every registered model) and every site page."""
    from django.contrib import admin

    paths = ["/admin/login/", "/admin/logout/", "/admin/password_change/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        paths += [base, base + "add/", base + "1/change/", base + "1/delete/"]
    return paths + ["/", "/items/1/", "/nodb/", "/healthz", "/dashboard/", API, "/metrics"]


def test_no_view_is_csrf_exempt():
    """The URL conf holds no csrf_exempt view, so the middleware guards every POST."""
    from django.urls import get_resolver

    def walk(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    exempt = [route for route, view in walk(get_resolver()) if getattr(view, "csrf_exempt", 0)]
    assert not exempt, exempt


def test_csrf_refuses_every_unsafe_request_without_a_token(site):
    server, users = site
    staff = users["bad-input-staff"]
    form = "application/x-www-form-urlencoded"
    for path in state_changing_endpoints():
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for cookie in ("", staff, staff + "; csrftoken=" + "a" * 32):
                headers = {"Content-Type": form, **({"Cookie": cookie} if cookie else {})}
                body = "csrfmiddlewaretoken=" + "b" * 32 if "csrftoken" in cookie else "x=1"
                result = request(server.url, path, headers=headers, method=method, body=body)
                check(result, {403}, f"{method} {path} cookie={cookie[:20]!r}")
                assert "CSRF" in result.text or "access" in result.text, result.text[:200]


def test_admin_login_with_a_token_works_and_stays_on_site(site):
    """The control: the same POST with the form's token logs in (so the 403s above are
    CSRF's), and a ``next`` pointing elsewhere is not followed."""
    server, _ = site
    page = request(server.url, "/admin/login/")
    assert page.status == 200
    cookie = page.headers["set-cookie"].split(";")[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    for next_url in ["/admin/", "https://evil.example/", "//evil.example/"]:
        body = (
            f"csrfmiddlewaretoken={token}&username=bad-input-staff&password={PASSWORD}"
            f"&next={quote(next_url, safe='')}"
        )
        result = request(
            server.url,
            "/admin/login/",
            method="POST",
            body=body,
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        check(result, {302}, f"login next={next_url}")
        location = result.headers["location"]
        assert location.startswith("/") and not location.startswith("//"), location
        assert "evil" not in location, location
    attempt = "not-the-password-4711"
    wrong = request(
        server.url,
        "/admin/login/",
        method="POST",
        body=f"csrfmiddlewaretoken={token}&username=bad-input-staff&password={attempt}",
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    check(wrong, {200}, "wrong password")
    assert "Please enter the correct username and password" in wrong.text
    assert attempt not in wrong.text  # a password is never echoed back
