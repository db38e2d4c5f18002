"""The site under mod_wsgi-express through a real PgBouncer in transaction pooling.

Every PgBouncer here is configured by ``manage.py pgbouncer_conf``. The load comes from
``harness/load.py`` (fresh HTTP connections, nothing retried).
"""

import json
import time
from pathlib import Path

import pytest
from django.test import Client

from harness import load
from harness.modwsgi import get
from harness.sampling import Sampler
from persistent_backend.deployment import short_hostname
from tests.pgbouncer.conftest import backends, bouncer_env
from tests.pgbouncer.harness import wait_until

REPO_DIR = Path(__file__).resolve().parents[2]
OUTPUT_DIR = REPO_DIR / "var" / "test-output" / "pgbouncer"


@pytest.fixture
def item_path(demo_data):
    from catalog.models import Item

    return f"/items/{Item.objects.order_by('id').values_list('id', flat=True).first()}/"


@pytest.fixture
def staff_headers(django_user_model):
    """A staff session cookie (the session row is committed: the servers read it)."""
    user = django_user_model.objects.create_user("pgb-e2e", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


def site_clients(bouncer):
    """{application_name: count} of PgBouncer's client connections to the site database."""
    found = {}
    for row in bouncer.show("CLIENTS"):
        if row["database"] == bouncer.db_name:
            found[row["application_name"]] = found.get(row["application_name"], 0) + 1
    return found


class BackendSampler(Sampler):
    """The most PostgreSQL sessions of the PgBouncer role seen while a load runs."""

    def __init__(self, pg_cluster, db_name, interval=0.05):
        super().__init__(interval, name="backend-sampler")
        self.args = (pg_cluster, db_name)
        self.samples = []

    def sample(self):
        self.samples.append(backends(*self.args))

    @property
    def maximum(self):
        return max(self.samples, default=0)


@pytest.mark.parametrize(
    "mode, processes, threads", [("process", 2, 1), ("pool", 1, 4)], ids=["process", "pool"]
)
def test_the_site_serves_through_pgbouncer(
    mode, processes, threads, live_site, make_bouncer, item_path, pg_cluster, site_role
):
    bouncer = make_bouncer(processes=processes, threads=threads)
    server = live_site(
        processes=processes, threads=threads, PERSISTENT_MODE=mode, **bouncer_env(bouncer)
    )
    limit = int(bouncer.setting("max_db_connections"))
    with BackendSampler(pg_cluster, site_role["db_name"]) as sampler:
        results = load.Load(server.url, [item_path, "/", "/healthz"], total=90, concurrency=4).run()
    assert load.counts(results) == {"sent": 90, "2xx": 90, "503": 0, "500": 0, "other": 0}, [
        load.describe(r) for r in results if not r.ok
    ][:5]
    # Every client connection names a daemon of this server; PostgreSQL saw PgBouncer's pool.
    daemons = {f"site:{short_hostname()}:{pid}" for pid in server.daemon_pids()}
    clients = site_clients(bouncer)
    assert clients and set(clients) <= daemons, (clients, daemons)
    per_process = 1 if mode == "process" else threads
    assert all(count <= per_process for count in clients.values()), clients
    assert 1 <= sampler.maximum <= limit, (sampler.samples, limit)
    # Each daemon said, in its log, what pgbouncer=True changed.
    assert "persistent_backend.I002" in server.logs()


def test_pgbouncer_restart_under_load_recovers(live_site, make_bouncer, item_path):
    """Like a PostgreSQL restart: 503 while PgBouncer is down, 200 once it is back, no 500."""
    bouncer = make_bouncer(processes=2, threads=1)
    server = live_site(processes=2, threads=1, PERSISTENT_MODE="process", **bouncer_env(bouncer))
    traffic = load.Load(server.url, [item_path], total=5000, concurrency=4, rate=60, deadline=90)
    with traffic:
        wait_until(lambda: sum(r.ok for r in traffic.snapshot()) >= 30, what="200s before")
        bouncer.stop()  # SIGTERM: immediate shutdown, every client connection cut
        stopped = time.monotonic()
        wait_until(
            lambda: any(r.status == 503 and r.start >= stopped for r in traffic.snapshot()),
            what="a 503 while PgBouncer is down",
        )
        bouncer.start()  # same ini, same port
        restarted = time.monotonic()
        wait_until(
            lambda: sum(r.ok and r.start >= restarted for r in traffic.snapshot()) >= 60,
            timeout=30,
            what="200s after the restart",
        )
    results = traffic.results
    figures = load.counts(results)
    assert figures["500"] == 0 and figures["other"] == 0, [
        load.describe(r, stopped) for r in results if r.status not in (200, 503)
    ][:5]
    down = [r for r in results if r.status == 503]
    assert down and all("database" in r.text.lower() for r in down)
    assert all(r.headers.get("retry-after") == "5" for r in down)
    after = [r for r in results if r.start >= restarted]
    assert after and all(r.ok for r in after), [load.describe(r, restarted) for r in after][:5]


def test_three_hosts_behind_one_pgbouncer(
    live_site, make_bouncer, item_path, pg_cluster, site_role, staff_headers
):
    """Three independent mod_wsgi-express instances (hosts web1..web3, 2 x 2 each, pool
    mode) share one PgBouncer with a pool of 1: PostgreSQL never sees more than 1 backend
    while the hosts keep several client connections each, and the dashboard of any host
    groups them per host and process."""
    hosts = ["web1", "web2", "web3"]
    bouncer = make_bouncer(processes=2, threads=2, hosts=3, pool_size=1, reserve_pool_size=0)
    servers = {
        host: live_site(
            processes=2,
            threads=2,
            PERSISTENT_MODE="pool",
            PERSISTENT_HOSTNAME=host,
            DASHBOARD_PUBLISH_INTERVAL="1",
            **bouncer_env(bouncer),
        )
        for host in hosts
    }
    loads = {
        host: load.Load(server.url, [item_path], total=150, concurrency=6, deadline=60)
        for host, server in servers.items()
    }
    started = time.monotonic()
    with BackendSampler(pg_cluster, site_role["db_name"]) as sampler:
        for traffic in loads.values():
            traffic.start()
        results = {host: traffic.wait() for host, traffic in loads.items()}
    elapsed = time.monotonic() - started
    for host, host_results in results.items():
        assert load.counts(host_results)["2xx"] == 150, (host, load.counts(host_results))
    status, body, _ = get(servers["web1"].url + "/dashboard/api/snapshot", headers=staff_headers)
    assert status == 200, body[:500]
    snap = json.loads(body)
    b = snap["pgbouncer"]
    assert b["reachable"], b["error"]
    by_host = {h["host"]: h for h in b["hosts"]}
    assert set(by_host) == set(hosts), by_host
    for host in hosts:
        daemons = set(servers[host].daemon_pids())
        assert 1 <= by_host[host]["processes"] <= 2
        assert {p["pid"] for p in by_host[host]["by_process"]} <= daemons
        assert 1 <= by_host[host]["clients"] <= 2 * 2  # processes x pool max_size
    clients = b["totals"]["clients"]
    # The bound: PgBouncer's pool (1), whatever the number of client connections.
    assert b["totals"]["servers"] <= 1 and sampler.maximum <= 1, sampler.samples
    assert clients >= len(hosts) * sampler.maximum
    assert snap["deployment"]["host"] == "web1" and snap["served_by"]["host"] == "web1"
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    figures = {
        "hosts": len(hosts),
        "daemons": "3 hosts x 2 processes x 2 threads, persistent_backend pool mode",
        "pgbouncer_pool": {"default_pool_size": 1, "reserve_pool_size": 0},
        "requests": 3 * 150,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(3 * 150 / elapsed, 1),
        "client_connections": clients,
        "client_connections_per_host": {h: by_host[h]["clients"] for h in hosts},
        "postgresql_backends_max": sampler.maximum,
        "pgbouncer_totals": b["totals"],
    }
    (OUTPUT_DIR / "three-hosts.json").write_text(json.dumps(figures, indent=2) + "\n")
