"""The bench's own PostgreSQL: a throwaway cluster with password authentication.

Every connection, the superuser's included, authenticates with scram-sha-256 (over TCP
and over the unix socket), as a production server would. The role ``bench`` owns the
database ``bench`` and its tables; each configuration's site logs in as a role of its own
(``site_role()``, a member of ``bench`` with its privileges), so that its sessions
(``pg_stat_activity.usename``) and its statements (``pg_stat_statements.userid``) are
told apart from another site's that is up at the same time (--slices). The bench itself
watches from the ``postgres`` database as the superuser, so its own session never counts
as one of the sites'.
"""

import json
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from harness.pgcluster import PgCluster
from harness.sampling import Sampler
from harness.site import STOCK_ENGINE, run_manage, site_environment
from harness.waiting import poll

DB_NAME = "bench"
DB_USER = "bench"
DEMO_ITEMS = 2000

# A role (usename) of NULL: every site's.
BACKENDS_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = %(db)s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
AND (%(role)s::text IS NULL OR usename = %(role)s)
"""
STATEMENTS_SQL = """
SELECT s.queryid, s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
JOIN pg_roles r ON r.oid = s.userid
WHERE d.datname = %(db)s AND (%(role)s::text IS NULL OR r.rolname = %(role)s)
"""


class BenchDatabase:
    """The cluster, the site's role and database, loaded with the demo catalog."""

    def __init__(self, max_connections=100):
        # Mode 0755 so that www-data (the daemons) can reach the unix socket inside it.
        self.base_dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.base_dir.chmod(0o755)
        self.cluster = PgCluster(
            self.base_dir,
            max_connections=max_connections,
            password=secrets.token_hex(16),
            settings={
                # Top-level statements only: what the site sends, not what triggers run.
                "pg_stat_statements.max": 10000,
                "pg_stat_statements.track": "top",
                # The zone of a Debian cluster on a UTC host, pinned so that the caller's
                # TZ does not change the figures: Django (TIME_ZONE "UTC") then sets the
                # zone once on every new connection, as in most deployments.
                "timezone": "'Etc/UTC'",
            },
        )
        self.password = secrets.token_hex(16)
        self.secret_key = secrets.token_urlsafe(48)
        self._conn = None
        self._lock = threading.Lock()
        self._roles = set()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, work_dir):
        """Start the cluster, create the site's role and database, migrate and
        load the demo data with manage.py in ``work_dir``; returns self."""
        self.cluster.init().start()
        self.cluster.wait_ready()
        # CREATE ROLE/DATABASE: one statement per call (CREATE DATABASE cannot run in a
        # transaction block). pg_monitor: the dashboard reads every session's state.
        self.cluster.query(f"CREATE ROLE {DB_USER} LOGIN PASSWORD %s", [self.password])
        self.cluster.query(f"GRANT pg_monitor TO {DB_USER}")
        self.cluster.query(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        for dbname in ("postgres", DB_NAME):
            self.cluster.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname=dbname)
        self.manage(work_dir, "migrate", "--noinput", "-v0")
        self.manage(work_dir, "load_demo_data", "--items", str(DEMO_ITEMS))
        self.cluster.query("ANALYZE", dbname=DB_NAME)
        return self

    def destroy(self):
        """Close the sampling connection and delete the cluster."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.cluster.destroy()

    # -- how the site reaches it -------------------------------------------------------
    def site_role(self, name):
        """The login role of configuration ``name`` (created once): a member of ``bench``,
        whose tables it uses through that membership, with the same password."""
        role = "bench_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        role = role[:63]
        if role not in self._roles:
            self.cluster.query(
                f"CREATE ROLE {role} LOGIN PASSWORD %s IN ROLE {DB_USER}", [self.password]
            )
            self._roles.add(role)
        return role

    def url(self, route="tcp", host=None, port=None, user=DB_USER):
        """The site's DATABASE_URL over TCP, the Unix socket, or another host:port."""
        if route == "unix":
            host = quote(str(self.cluster.socket_dir), safe="")
        host = host or self.cluster.host
        port = port or self.cluster.port
        return f"postgres://{user}:{self.password}@{host}:{port}/{DB_NAME}"

    def site_env(self, work_dir, url=None):
        """The environment of a site process: production-like settings, no var/site.env."""
        return site_environment(
            url or self.url(),
            self.secret_key,
            DJANGO_LOG_LEVEL="WARNING",
            DJANGO_VAR_DIR=Path(work_dir) / "var",
        )

    def manage(self, work_dir, *args, env=None):
        """Run ``site/manage.py ARGS`` against the bench database (stock backend)."""
        full_env = {
            **self.site_env(work_dir),
            "DJANGO_DB_ENGINE": STOCK_ENGINE,
            "DJANGO_CONN_MAX_AGE": "0",
            "DJANGO_DB_POOL": "0",
            "DJANGO_PSYCOPG": "2",
            **(env or {}),
        }
        result = run_manage(args, full_env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}"
                f"{result.stderr[-3000:]}"
            )
        return result.stdout

    def probe(self, work_dir, item_path, env=None):
        """What the site does per page, seen from inside Django (PROBE_CODE below)."""
        out = self.manage(work_dir, "shell", "-c", PROBE_CODE % {"path": item_path}, env=env)
        return json.loads(out.strip().splitlines()[-1])

    # -- watching it -------------------------------------------------------------------
    def _query(self, sql, params=()):
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self.cluster.connect("postgres")
            with self._conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

    def first_item_id(self):
        """The lowest demo item id (the item page the bench loads)."""
        conn = self.cluster.connect(DB_NAME)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT min(id) FROM catalog_item")
                return cur.fetchone()[0]
        finally:
            conn.close()

    def backends(self, role=None):
        """The sites' PostgreSQL backends now (client sessions on the bench database), or
        those of the site that logs in as ``role``."""
        return self._query(BACKENDS_SQL, {"db": DB_NAME, "role": role})[0][0]

    def wait_no_backends(self, timeout=15):
        """Wait until the previous configuration's sessions are gone; return how many stay."""
        if poll(lambda: self.backends() == 0, timeout, 0.1):
            return 0
        return self.backends()

    def statements(self, role=None):
        """pg_stat_statements counters for the bench database (those ``role`` ran, if
        given): {queryid: (calls, text)}."""
        counters = {}
        for queryid, calls, text in self._query(STATEMENTS_SQL, {"db": DB_NAME, "role": role}):
            before = counters.get(queryid, (0, text))[0]  # one row per role that ran it
            counters[queryid] = (before + calls, text)
        return counters

    def server_version(self):
        return self._query("SHOW server_version")[0][0]


def statements_delta(before, after):
    """Calls per statement between two snapshots: (total, [(calls, text), ...])."""
    rows = []
    for queryid, (calls, text) in after.items():
        delta = calls - before.get(queryid, (0, ""))[0]
        if delta > 0:
            rows.append((delta, text))
    rows.sort(reverse=True)
    return sum(calls for calls, _ in rows), rows


class BackendSampler(Sampler):
    """Samples the site's backend count in a thread while the load runs.

    ``role``: count only the sessions of the site that logs in as it. ``samples``: a list
    to go on from (a run measured in slices): the times continue after its last one, so
    they count seconds under load."""

    def __init__(self, database, interval=0.25, role=None, samples=None):
        super().__init__(interval, name="backend-sampler")
        self.database = database
        self.role = role
        self.samples = [] if samples is None else samples
        already = self.samples[-1][0] + interval if self.samples else 0.0
        self._start = time.monotonic() - already

    def sample(self):
        count = self.database.backends(self.role)
        self.samples.append((time.monotonic() - self._start, count))

    def figures(self):
        """``backends_mid``, ``backends_max``, ``backends_mean`` of the samples so far."""
        return backend_figures(self.samples)


def backend_figures(samples):
    """From ``(seconds, count)`` samples taken evenly under load: the count nearest the
    middle of the run, the most in one sample, and the time average (None without any)."""
    if not samples:
        return {"backends_mid": None, "backends_max": None, "backends_mean": None}
    middle = samples[-1][0] / 2
    counts = [count for _, count in samples]
    return {
        "backends_mid": min(samples, key=lambda sample: abs(sample[0] - middle))[1],
        "backends_max": max(counts),
        "backends_mean": sum(counts) / len(counts),
    }


# Run inside ``manage.py shell``: how many queries each page sends (Django's own count,
# which leaves out connection set-up), and which middleware is installed.
PROBE_CODE = """
import json
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

client = Client()
result = {"middleware": list(settings.MIDDLEWARE), "queries": {}, "status": {}}
for key, path in (("items", "%(path)s"), ("nodb", "/nodb/")):
    client.get(path)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    result["queries"][key] = len(ctx.captured_queries)
    result["status"][key] = response.status_code
print(json.dumps(result))
"""
