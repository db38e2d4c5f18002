"""Request counts across processes: exact totals, dead processes kept in the totals."""

import subprocess
import sys
import time

import pytest

from dashboard import history
from dashboard.histogram import BOUNDS, empty_buckets, quantile
from tests.dashboard.conftest import env_for_subprocess

API = "/dashboard/api/snapshot"

# A separate Python process that serves requests through the site's middleware stack
# (Django's test client), then exits: its final figures are published at exit.
SERVE = """
import sys, django
django.setup()
from django.test import Client
client = Client()
for i in range(int(sys.argv[1])):
    assert client.get("/nodb/").status_code == 200
assert client.get("/no-such-page/").status_code == 404
print(__import__("os").getpid())
"""


def totals(client):
    return client.get(API).json()["requests"]


@pytest.mark.django_db
def test_counts_equal_requests_sent_and_polls_are_not_counted(staff_client):
    before = totals(staff_client)
    for _ in range(7):
        assert staff_client.get("/nodb/").status_code == 200
    assert staff_client.get("/nope/").status_code == 404
    for _ in range(3):
        staff_client.get(API)  # the dashboard's own polls are not site traffic
    after = totals(staff_client)
    assert after["total"] - before["total"] == 8
    assert after["errors_5xx"] == before["errors_5xx"]
    latency = after["latency"]
    assert sum(latency["buckets"]) == latency["count"]
    assert latency["p50"] is not None and latency["p50"] <= latency["p95"] <= latency["p99"]


def test_requests_of_other_processes_are_merged_and_stay_after_exit(
    staff_client, site_env, dashboard_metrics_dir
):
    before = staff_client.get(API).json()
    env = env_for_subprocess(site_env, dashboard_metrics_dir)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SERVE, str(n)], env=env, stdout=subprocess.PIPE, text=True
        )
        for n in (11, 5)
    ]
    pids = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        pids.append(int(out.split()[-1]))
    after = staff_client.get(API).json()
    # 11 + 1 and 5 + 1 requests (the 404s count too), from two processes that have exited.
    assert after["requests"]["total"] - before["requests"]["total"] == 18
    listed = {p["pid"] for p in after["processes"]}
    assert not listed & set(pids)
    exited = {e["pid"]: e["requests"] for e in after["exited"]}
    assert exited[pids[0]] == 12 and exited[pids[1]] == 6
    again = staff_client.get(API).json()
    assert again["requests"]["total"] == after["requests"]["total"]


def test_rates_come_from_each_process_publication_times():
    """Two samples apart in the shared ring give exact rates, whoever computed them."""
    key = "h:1"
    old = {
        "t": 100.0,
        "procs": {key: [99.0, 100, 1, 10]},
        "cpu": {},
        "xact": [100.0, 1000],
        "buckets": empty_buckets(),
        "states": {},
    }
    current = {**old, "t": 112.0, "procs": {key: [109.0, 150, 3, 12]}, "xact": [112.0, 1240]}
    point, rates = history.evaluate([old], current)
    assert rates[key] == {"requests": 5.0, "errors_5xx": 0.2, "new_connections": 0.2}
    assert point["requests_per_s"] == 5.0
    assert point["transactions_per_s"] == 20.0
    # A counter that went backwards (a reused key) gives no rate rather than a negative one.
    current["procs"][key] = [110.0, 10, 0, 1]
    assert history.evaluate([old], current)[1][key]["requests"] is None


def test_latency_quantiles_from_merged_buckets():
    counts = empty_buckets()
    counts[BOUNDS.index(0.005)] = 90  # (0.0025, 0.005]
    counts[BOUNDS.index(0.1)] = 10  # (0.05, 0.1]
    assert quantile(0.5, counts) == pytest.approx(0.0025 + 0.0025 * 50 / 90)
    assert quantile(0.95, counts) == pytest.approx(0.05 + 0.05 * 5 / 10)
    assert quantile(0.5, empty_buckets()) is None
    assert history.latency_counts([], counts, time.time(), 60) == (counts, None)


@pytest.mark.django_db(transaction=True)
def test_database_down_is_a_json_503_and_5xx_are_counted(staff_client, controllable_cluster):
    from django.db import connections

    before = totals(staff_client)
    connections.close_all()
    controllable_cluster.stop()
    try:
        assert staff_client.get("/healthz").status_code == 503
        response = staff_client.get(API)
        assert response.status_code == 503
        assert response.json()["error"] == "database_unavailable"
        assert response["Retry-After"] == "5"
    finally:
        connections.close_all()
        controllable_cluster.start()
        controllable_cluster.wait_ready()
    after = totals(staff_client)
    assert after["errors_5xx"] - before["errors_5xx"] == 1
    assert after["total"] - before["total"] == 1
