"""The bench's own PostgreSQL: a throwaway cluster with password authentication.

Every connection, the superuser's included, authenticates with scram-sha-256 (over TCP
and over the unix socket), as a production server would. The site logs in as the role
``bench`` to the database ``bench``; the bench itself watches from the ``postgres``
database as the superuser, so its own session never counts as one of the site's.
"""

import json
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

BACKENDS_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
STATEMENTS_SQL = """
SELECT s.queryid, s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = %s
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
    def url(self, route="tcp", host=None, port=None):
        """The site's DATABASE_URL over TCP, the Unix socket, or another host:port."""
        if route == "unix":
            host = quote(str(self.cluster.socket_dir), safe="")
        host = host or self.cluster.host
        port = port or self.cluster.port
        return f"postgres://{DB_USER}:{self.password}@{host}:{port}/{DB_NAME}"

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

    def backends(self):
        """The site's PostgreSQL backends now (client sessions on the bench database)."""
        return self._query(BACKENDS_SQL, [DB_NAME])[0][0]

    def wait_no_backends(self, timeout=15):
        """Wait until the previous configuration's sessions are gone; return how many stay."""
        if poll(lambda: self.backends() == 0, timeout, 0.1):
            return 0
        return self.backends()

    def statements(self):
        """pg_stat_statements counters for the bench database: {queryid: (calls, text)}."""
        return {row[0]: (row[1], row[2]) for row in self._query(STATEMENTS_SQL, [DB_NAME])}

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
    """Samples the site's backend count in a thread while the load runs."""

    def __init__(self, database, interval=0.25):
        super().__init__(interval, name="backend-sampler")
        self.database = database
        self.samples = []
        self._start = time.monotonic()

    def sample(self):
        self.samples.append((time.monotonic() - self._start, self.database.backends()))

    def mid_run(self):
        """The sample nearest to the middle of the run."""
        if not self.samples:
            return None
        middle = self.samples[-1][0] / 2
        return min(self.samples, key=lambda sample: abs(sample[0] - middle))[1]

    def maximum(self):
        """Most backends seen in one sample, None without samples."""
        return max((count for _, count in self.samples), default=None)

    def mean(self):
        """The average over the run's samples (evenly spaced, so a time average)."""
        if not self.samples:
            return None
        return sum(count for _, count in self.samples) / len(self.samples)


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
