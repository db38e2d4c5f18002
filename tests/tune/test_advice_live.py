"""The advice panel under real load: the site under mod_wsgi-express (2 processes x 8
threads, a pool of 3 connections each, a 64 MiB memory budget) on the test PostgreSQL,
loaded past its threads and its pools, then left idle."""

import json
import re
import time

import pytest
from django.test import Client

from harness.load import Load
from harness.modwsgi import get
from harness.waiting import poll

API = "/dashboard/api/snapshot"


@pytest.fixture
def server(live_site):
    return live_site(
        processes=2,
        threads=8,
        PERSISTENT_MODE="pool",
        PERSISTENT_MAX_SIZE="3",
        DASHBOARD_PUBLISH_INTERVAL="1",
        DASHBOARD_MEMORY_BUDGET_MIB="64",
    )


@pytest.fixture
def staff_headers(django_user_model):
    user = django_user_model.objects.create_user(
        "advice-staff", password="advice-test-password-3", is_staff=True
    )
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


def advice_now(server, headers):
    status, body, _ = get(server.url + API, headers=headers, timeout=30)
    assert status == 200, (status, body[:300], server.logs())
    return {line["rule"]: line["message"] for line in json.loads(body)["advice"]}


def wait_for_rules(server, headers, wanted, timeout):
    seen = {}

    def check():
        seen.clear()
        seen.update(advice_now(server, headers))
        return wanted <= set(seen)

    poll(check, timeout=timeout, step=0.5)
    return seen


@pytest.mark.apache
def test_rules_fire_under_real_load_and_when_idle(
    server, staff_headers, django_user_model, django_db_blocker
):
    from catalog.models import Item

    with django_db_blocker.unblock():
        ids = list(Item.objects.order_by("id").values_list("id", flat=True)[:50])
    paths = [f"/items/{item_id}/" for item_id in ids]
    load = Load(server.url, paths, total=1_000_000, concurrency=32, deadline=90, timeout=30)
    with load:
        busy = wait_for_rules(server, staff_headers, {"busy_daemons", "pool_waits", "memory"}, 60)
    statuses = {result.status for result in load.results}
    assert statuses == {200}, statuses
    assert {"busy_daemons", "pool_waits", "memory"} <= set(busy), busy
    assert "Request threads are busy" in busy["busy_daemons"]
    assert "raise PERSISTENT_MAX_SIZE from 3 towards the 8 threads" in busy["pool_waits"]
    assert "of the 64 MiB memory budget" in busy["memory"]

    # Idle: the pools keep their connections, which requests no longer use.
    time.sleep(2)
    idle = wait_for_rules(server, staff_headers, {"idle_connections"}, 30)
    assert "lower PERSISTENT_MAX_SIZE from 3 to 1" in idle.get("idle_connections", ""), idle

    # The page carries the same lines in its snapshot data (json_script), from which
    # advice.js draws the panel with textContent (tests/tune/test_advice_browser.py).
    status, page, _ = get(server.url + "/dashboard/", headers=staff_headers, timeout=30)
    assert status == 200
    data = re.search(r'<script id="dashboard-data"[^>]*>(.*?)</script>', page, re.S)
    assert 'id="advice"' in page and data, page[:500]
    assert "idle_connections" in {line["rule"] for line in json.loads(data.group(1))["advice"]}
    assert "dashboard:snapshot" in page  # advice.js listens for dashboard.js's redraws
