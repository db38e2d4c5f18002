"""A real PgBouncer for the tests, configured by the generator itself.

``Bouncer.generate()`` runs ``python site/manage.py pgbouncer_conf`` (the command operators
run) into a fresh directory; ``start()`` writes the real auth_file (each role's SCRAM
secret from pg_authid, as deploy.sh does) and runs Debian's ``pgbouncer`` on that ini in
the foreground, as the ``postgres`` OS user when the tests run as root.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg2

from bench.pgbouncer import shape_of, start_pgbouncer
from tests.support.pgcluster import free_port
from tests.support.waiting import wait_until as wait_until  # the tests import it from here

REPO_DIR = Path(__file__).resolve().parents[2]
MANAGE = REPO_DIR / "site" / "manage.py"


def run_generator(*args):
    """``python site/manage.py pgbouncer_conf ARGS`` with the stock backend (as apache_conf's)."""
    env = {**os.environ, "DJANGO_DB_ENGINE": "django.db.backends.postgresql"}
    return subprocess.run(
        [sys.executable, str(MANAGE), "pgbouncer_conf", *map(str, args)],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Bouncer:
    """PgBouncer in front of ``cluster`` (a PgCluster) for the database ``db_name``.

    ``roles``: {role: password} of the roles that log in through it (they must exist with
    a SCRAM password in the cluster). Sizing: one web host of ``processes`` x ``threads``
    unless ``hosts`` says otherwise; ``pool_size``/``reserve_pool_size`` fixed when given.
    """

    def __init__(
        self,
        cluster,
        db_name,
        roles,
        processes=2,
        threads=1,
        hosts=1,
        pool_size=None,
        reserve_pool_size=None,
        max_connections=100,
    ):
        self.cluster = cluster
        self.db_name = db_name
        self.roles = dict(roles)
        self.stats_user = next(iter(self.roles))
        self.shape = shape_of(processes, threads)
        self.hosts = hosts
        self.pool_size = pool_size
        self.reserve_pool_size = reserve_pool_size
        self.max_connections = max_connections
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-test-"))
        self.dir.chmod(0o755)
        self.proc = None
        self.generated = None

    # -- the generator ---------------------------------------------------------------------
    def generator_args(self):
        args = [
            "--out",
            self.dir,
            "--variant",
            self.shape.variant,
            "--processes",
            self.shape.processes,
            "--threads",
            self.shape.threads,
            "--hosts",
            self.hosts,
            "--cores",  # a fixed machine: the derived pool does not depend on the host
            2,
            "--memory-gib",
            4,
            "--max-connections",
            self.max_connections,
            "--superuser-reserved",
            3,
            "--others",
            0,
            "--listen-addr",
            self.host,
            "--listen-port",
            self.port,
            "--unix-socket-dir",
            "",
            "--db-host",
            self.cluster.host,
            "--db-port",
            self.cluster.port,
            "--db-name",
            self.db_name,
            "--stats-user",
            self.stats_user,
            "--auth-file",
            self.dir / "userlist.txt",
            "--logfile",
            self.dir / "pgbouncer.log",
            "--pidfile",
            self.dir / "pgbouncer.pid",
        ]
        if self.pool_size is not None:
            args += ["--pool-size", self.pool_size]
        if self.reserve_pool_size is not None:
            args += ["--reserve-pool-size", self.reserve_pool_size]
        return args

    def generate(self):
        result = run_generator(*self.generator_args())
        if result.returncode != 0:
            raise RuntimeError(f"pgbouncer_conf failed:\n{result.stdout}{result.stderr}")
        self.generated = result
        return result

    @property
    def ini(self):
        return self.dir / "pgbouncer.ini"

    def setting(self, name):
        """A ``name = value`` line of the generated ini."""
        for line in self.ini.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == name and not line.startswith(";"):
                return value.strip()
        raise KeyError(name)

    # -- running it -------------------------------------------------------------------------
    def write_userlist(self):
        """Each role's SCRAM secret from pg_authid (no password on disk), as deploy.sh does."""
        rows = self.cluster.query(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
            [list(self.roles)],
        )
        secrets = dict(rows)
        lines = []
        for role in self.roles:
            secret = secrets.get(role) or ""
            if not secret.startswith("SCRAM-SHA-256$"):
                raise RuntimeError(f"role {role} has no SCRAM secret in pg_authid")
            lines.append(f'"{role}" "{secret}"\n')
        path = self.dir / "userlist.txt"
        path.unlink(missing_ok=True)
        path.write_text("".join(lines))
        path.chmod(0o600)

    def start(self, timeout=15):
        if self.generated is None:
            self.generate()
        self.write_userlist()
        start_pgbouncer(self, self.ini, self.dir, timeout)
        return self

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM: immediate shutdown (clients' connections are cut); SIGINT: safe one."""
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # -- reaching it ------------------------------------------------------------------------
    def url(self, role=None, dbname=None):
        role = role or self.stats_user
        password = quote(self.roles[role], safe="")
        return f"postgres://{role}:{password}@{self.host}:{self.port}/{dbname or self.db_name}"

    def admin_url(self, role=None):
        return self.url(role, "pgbouncer")

    def connect(self, role=None, dbname=None, autocommit=True, **kwargs):
        conn = psycopg2.connect(self.url(role, dbname), connect_timeout=5, **kwargs)
        conn.autocommit = autocommit
        return conn

    def show(self, what, role=None):
        """``SHOW <what>`` on the admin console, as a list of dicts."""
        conn = self.connect(role, "pgbouncer")
        try:
            with conn.cursor() as cur:
                cur.execute(f"SHOW {what}")
                names = [column[0] for column in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def pool(self, role=None):
        """The SHOW POOLS row of the site's database (and ``role``)."""
        role = role or self.stats_user
        for row in self.show("POOLS"):
            if row["database"] == self.db_name and row["user"] == role:
                return row
        return None
