"""End to end: the site under mod_wsgi-express with 2 daemon processes, read as staff."""

import json
import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
from django.test import Client

from dashboard import processes, store
from harness.modwsgi import get
from tests.dashboard.conftest import HeldConnections, wait_until

API = "/dashboard/api/snapshot"
N = 40


@pytest.fixture
def server(live_site):
    return live_site(processes=2, threads=1, DASHBOARD_PUBLISH_INTERVAL="1")


@pytest.fixture
def staff_cookie(make_user):
    client = Client()
    client.force_login(make_user("e2e-staff", staff=True))
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


def snapshot(server, headers):
    status, body, _ = get(server.url + API, headers=headers)
    assert status == 200, (status, body[:500], server.logs())
    return json.loads(body)


def fresh_snapshot(server, headers, since):
    """A snapshot in which every process's figures were published after ``since``.

    A process publishes once before its first request and then every second, so once
    all records are newer than ``since`` they hold every request finished before it.
    """

    def check():
        snap = snapshot(server, headers)
        published = [p["published_at"] for p in snap["processes"] if p["published_at"]]
        return snap if published and min(published) >= since else None

    return wait_until(check, timeout=30, step=0.2, what="fresh figures")


def send(server, paths, workers=4):
    with ThreadPoolExecutor(workers) as pool:
        statuses = list(pool.map(lambda path: get(server.url + path)[0], paths))
    assert statuses == [200] * len(paths)


def published_requests(server, pid):
    """The request count in the file a daemon last published (None before its first)."""
    directory = Path(server.work_dir) / "var" / "metrics"
    for path in directory.glob(f"{store.RECORD_PREFIX}{processes.HOST}-{pid}-*.json"):
        record = store.read_json(path)
        if record is not None:
            return record["requests"]
    return None


def direct_site_counts(db_url, pids):
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE application_name = ANY(%s) GROUP BY 1",
                [[f"site:{processes.HOST}:{pid}" for pid in pids]],
            )
            return {int(name.rsplit(":", 1)[1]): n for name, n in cur.fetchall()}
    finally:
        conn.close()


def test_two_daemons_requests_and_connections(server, staff_cookie, test_db_url, django_db_blocker):
    from catalog.models import Item

    with django_db_blocker.unblock():
        ids = list(Item.objects.order_by("id").values_list("id", flat=True)[:N])
    baseline = fresh_snapshot(server, staff_cookie, time.time())["requests"]["total"]

    send(server, [f"/items/{item_id}/" for item_id in ids])
    snap = fresh_snapshot(server, staff_cookie, time.time())

    daemons = server.daemon_pids()
    assert len(daemons) == 2
    assert snap["deployment"]["server"] == "mod_wsgi daemon"
    assert (snap["deployment"]["processes"], snap["deployment"]["threads"]) == (2, 1)
    assert snap["requests"]["total"] - baseline == N
    procs = {p["pid"]: p for p in snap["processes"] if p["local"]}
    assert set(daemons) <= set(procs)
    for pid in daemons:
        proc = procs[pid]
        assert proc["alive"] and proc["threads"] == 1
        assert proc["rss_bytes"] > 0 and proc["uptime_seconds"] > 0
        assert proc["requests"]["total"] > 0, "each daemon served some of the requests"
    # Their connections, as pg_stat_activity shows them (the answering process's own
    # session is left out of its row).
    direct = direct_site_counts(test_db_url, daemons)
    for pid in daemons:
        own = 1 if pid == snap["served_by"]["pid"] else 0
        assert procs[pid]["connections"]["total"] == direct.get(pid, 0) - own
    assert sum(direct.values()) >= 2
    # The proof that persistence works: far fewer new connections than requests.
    opened = snap["requests"]["new_connections_total"]
    assert 1 <= opened < N / 4
    assert snap["requests"]["requests_per_new_connection"] > 4

    # A daemon killed: mod_wsgi starts a new one; the dead one's requests stay counted.
    # SIGKILL loses what the process counted since its last publication, so wait until
    # its file holds all of its requests (its own answers came from its memory).
    victim = daemons[0]
    victim_requests = procs[victim]["requests"]["total"]
    wait_until(
        lambda: published_requests(server, victim) == victim_requests,
        what="the victim's figures on disk",
    )
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(set(server.daemon_pids()) - {victim}) == 2, timeout=30)
    replacement = (set(server.daemon_pids()) - set(daemons)).pop()
    more = 0

    def replacement_counted():
        nonlocal more
        send(server, ["/nodb/"] * 8)
        more += 8
        snap = fresh_snapshot(server, staff_cookie, time.time())
        mine = [p for p in snap["processes"] if p["pid"] == replacement]
        return snap if mine and mine[0]["requests"]["total"] else None

    after = wait_until(replacement_counted, timeout=60, step=0, what="replacement serving")
    assert after["requests"]["total"] - baseline == N + more
    assert victim not in {p["pid"] for p in after["processes"]}
    assert {e["pid"]: e["requests"] for e in after["exited"]}[victim] == victim_requests
    new = next(p for p in after["processes"] if p["pid"] == replacement)
    assert (new["restarts"], new["replaced_pid"]) == (1, victim)


def test_warnings_and_snapshot_latency_with_ten_processes(
    server, staff_cookie, test_db_url, output_dir
):
    send(server, ["/"] * 8)
    daemon = server.daemon_pids()[0]
    held = HeldConnections(test_db_url)
    try:
        # A web process holding more connections than its one thread.
        held.idle(processes.HOST, daemon)
        held.idle(processes.HOST, daemon)
        # 10 site processes' worth of connections on another host: 4 each, mixed states.
        for pid in range(1001, 1011):
            held.idle("web-b", pid)
            held.idle("web-b", pid)
            held.idle_in_transaction("web-b", pid)
            held.in_background("web-b", pid, "SELECT pg_sleep(60)")
        snap = snapshot(server, staff_cookie)
        codes = {w["code"] for w in snap["warnings"]}
        assert "connections_over_threads" in codes
        remote = [p for p in snap["processes"] if p["host"] == "web-b"]
        assert len(remote) == 10 and all(p["connections"]["total"] == 4 for p in remote)

        wall, server_total, database = [], [], []
        for _ in range(40):
            started = time.perf_counter()
            snap = snapshot(server, staff_cookie)
            wall.append((time.perf_counter() - started) * 1000)
            server_total.append(snap["timings_ms"]["total"])
            database.append(snap["timings_ms"]["database"])
    finally:
        held.close()
    connections = snap["database"]["site_connections"]
    report = (
        f"snapshot endpoint, {len(snap['processes'])} processes, {connections} site connections,"
        f" 40 calls: HTTP median {statistics.median(wall):.1f} ms"
        f" (p90 {statistics.quantiles(wall, n=10)[-1]:.1f} ms);"
        f" server-side median {statistics.median(server_total):.1f} ms, of which the one"
        f" PostgreSQL query median {statistics.median(database):.2f} ms\n"
    )
    (output_dir / "snapshot-latency.txt").write_text(report)
    print(report)
