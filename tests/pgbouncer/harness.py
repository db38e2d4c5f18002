"""A real PgBouncer for the tests, configured by the generator itself.

``Bouncer.generate()`` runs ``python site/manage.py pgbouncer_conf`` (the command operators
run) into a fresh directory; ``start()`` writes the real auth_file (each role's SCRAM
secret from pg_authid, as deploy.sh does) and runs Debian's ``pgbouncer`` on that ini in
the foreground, as the ``postgres`` OS user when the tests run as root.
"""

import tempfile
from urllib.parse import quote

import psycopg2

from harness.pgbouncer import PgBouncerProcess, shape_of
from harness.site import REPO_DIR, run_manage
from harness.waiting import wait_until as wait_until  # the tests import it from here
from tests.apache_conf.conftest import generator_env


def run_generator(*args):
    """``python site/manage.py pgbouncer_conf ARGS`` with the stock backend (as apache_conf's)."""
    return run_manage(["pgbouncer_conf", *args], generator_env(), cwd=REPO_DIR)


class Bouncer(PgBouncerProcess):
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
        super().__init__(tempfile.mkdtemp(prefix="pgbouncer-test-"))
        self.work_dir.chmod(0o755)
        self.cluster = cluster
        self.db_name = db_name
        self.roles = dict(roles)
        self.stats_user = next(iter(self.roles))
        self.shape = shape_of(processes, threads)
        self.hosts = hosts
        self.pool_size = pool_size
        self.reserve_pool_size = reserve_pool_size
        self.max_connections = max_connections
        self.generated = None

    # -- the generator ---------------------------------------------------------------------
    def generator_args(self):
        args = [
            "--out",
            self.work_dir,
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
            self.work_dir / "userlist.txt",
            "--logfile",
            self.work_dir / "pgbouncer.log",
            "--pidfile",
            self.work_dir / "pgbouncer.pid",
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
        path = self.work_dir / "userlist.txt"
        path.unlink(missing_ok=True)
        path.write_text("".join(lines))
        path.chmod(0o600)

    def start(self, timeout=15):
        if self.generated is None:
            self.generate()
        self.write_userlist()
        return self.run(timeout)

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
