"""Who may see what: the page, the JSON snapshot, query texts, /metrics, the admin link."""

import time

import pytest

from dashboard import histogram, history, store
from tests.dashboard.conftest import MARKER

pytestmark = pytest.mark.django_db

API = "/dashboard/api/snapshot"


def test_anonymous_page_redirects_to_admin_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


def test_non_staff_page_is_403(client, make_user):
    client.force_login(make_user("visitor"))
    response = client.get("/dashboard/")
    assert response.status_code == 403


def test_staff_page_renders_first_paint(staff_client):
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    html = response.text
    for part in ['id="processes"', 'id="chart-throughput"', 'id="chart-states"', 'id="gauge"']:
        assert part in html
    # Script and style ship inside the page: no CDN, nothing to serve from /static/.
    assert "<script src" not in html and "http://" not in html.split("<body>")[1]
    assert "function poll()" in html
    assert 'id="dashboard-data"' in html


@pytest.mark.parametrize(
    "who, error", [(None, "not_authenticated"), ("visitor", "forbidden")], ids=["anon", "nonstaff"]
)
def test_api_refuses_with_json_403(client, make_user, who, error):
    if who:
        client.force_login(make_user(who))
    response = client.get(API)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error and body["message"]


@pytest.mark.django_db(transaction=True)
def test_staff_sees_queries_redacted(staff_client, known_connections):
    response = staff_client.get(API)
    assert response.status_code == 200
    snap = response.json()
    assert snap["queries_visible"] is False
    assert MARKER not in response.text
    queries = [c["query"] for p in snap["processes"] for c in p["connections"]["list"]]
    assert queries and set(queries) == {None}
    page = staff_client.get("/dashboard/")
    assert MARKER not in page.text and "redacted" in page.text


@pytest.mark.django_db(transaction=True)
def test_superuser_sees_query_texts(superuser_client, known_connections):
    snap = superuser_client.get(API).json()
    assert snap["queries_visible"] is True
    queries = [c["query"] or "" for p in snap["processes"] for c in p["connections"]["list"]]
    assert any(MARKER in q and "pg_sleep" in q for q in queries)
    assert MARKER in superuser_client.get("/dashboard/").text


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("?nope=1", "unknown parameter"),
        ("?since=yesterday", "since"),
        ("?since=-1", "since"),
        ("?since=nan", "since"),
        ("?window=5", "window"),
        ("?window=1e3", "window"),
    ],
)
def test_api_bad_parameters_are_400_json(staff_client, query, fragment):
    response = staff_client.get(API + query)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request" and fragment in body["message"]


def test_api_takes_since_and_window(staff_client, dashboard_metrics_dir):
    """``window`` picks the latency's reference sample, ``since`` the chart's points."""
    now = time.time()
    ring = [
        {
            "t": now - age,
            "procs": {},
            "cpu": {},
            "xact": None,
            "buckets": [0] * (len(histogram.BOUNDS) + 1),
            "states": {},
            "point": {"t": now - age, "states": {}, "requests_per_s": None},
        }
        for age in (100, 50, 20)
    ]
    with store.locked() as path:
        store.write_json(path / history.HISTORY, ring)
    short = staff_client.get(API + "?window=30").json()["requests"]["latency"]
    long = staff_client.get(API + "?window=60").json()["requests"]["latency"]
    # The newest sample at least ``window`` old: 50 s old for 30, 100 s old for 60.
    assert 50 <= short["window_seconds"] < 100 <= long["window_seconds"], (short, long)
    since = now - 60
    points = staff_client.get(API + f"?since={since}").json()["history"]
    assert all(point["t"] > since for point in points)
    assert {now - 50, now - 20} <= {point["t"] for point in points}
    everything = staff_client.get(API).json()["history"]
    assert now - 100 in {point["t"] for point in everything}


def test_api_is_get_only(staff_client):
    assert staff_client.post(API).status_code == 405


def test_metrics_needs_a_token_or_staff(client, make_user, settings):
    settings.DASHBOARD_METRICS_TOKEN = "s3cret-token"
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    good = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert good.status_code == 200
    assert good["Content-Type"].startswith("text/plain; version=")
    client.force_login(make_user("visitor"))
    assert client.get("/metrics").status_code == 403
    client.force_login(make_user("staff", staff=True))
    assert client.get("/metrics").status_code == 200


def test_metrics_token_unset_accepts_no_bearer(client, settings):
    settings.DASHBOARD_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_admin_index_links_to_dashboard(staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    assert 'href="/dashboard/"' in response.text
    assert "Dashboard" in response.text
