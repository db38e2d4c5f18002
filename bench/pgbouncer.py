"""A real PgBouncer (Debian's package) in transaction pooling mode, on a free port.

Its pgbouncer.ini is the one ``manage.py pgbouncer_conf`` writes (apache_conf.pgbouncer),
for the pool the caller sizes: ``pool_plan(variant)`` is the generator's sizing for this
machine, ``pool_plan(variant, pool_size=N, reserve_pool_size=0)`` a fixed pool.
Clients (the site) and PgBouncer itself both authenticate with scram-sha-256; PgBouncer
reaches PostgreSQL over TCP like the site does in the other configurations. It runs as
the ``postgres`` OS user when started as root (PgBouncer refuses to run as root).
"""

import tempfile
from pathlib import Path

from apache_conf import pgbouncer as generator
from apache_conf.sizing import Budget, Machine
from harness.pgbouncer import PgBouncerProcess, shape_of


def pool_plan(processes, threads, max_connections, pool_size=None, reserve_pool_size=None):
    """pgbouncer_conf's PoolPlan for one web host of this shape on this machine."""
    return generator.size(
        shape_of(processes, threads),
        Machine.detect(),
        Budget(max_connections=max_connections, source=f"max_connections {max_connections}"),
        pool_size=pool_size,
        reserve_pool_size=reserve_pool_size,
        force=True,
    )


class PgBouncer(PgBouncerProcess):
    """One PgBouncer in front of ``db_host:db_port/dbname`` for ``user``/``password``."""

    def __init__(self, db_host, db_port, dbname, user, password, plan, port=None):
        super().__init__(port=port)
        self.db_host = db_host
        self.db_port = db_port
        self.dbname = dbname
        self.user = user
        self.password = password
        self.plan = plan

    @property
    def pool_size(self):
        return self.plan.pool_size

    def config(self):
        """The ini from apache_conf's generator, pointed at the bench cluster."""
        setup = generator.Setup(
            listen_addr=self.host,
            listen_port=self.port,
            unix_socket_dir="",
            db_host=self.db_host,
            db_port=self.db_port,
            db_name=self.dbname,
            stats_user=self.user,
            auth_file=self.work_dir / "userlist.txt",
            logfile=self.work_dir / "pgbouncer.log",
            pidfile=self.work_dir / "pgbouncer.pid",
            log_connections=False,
        )
        return generator.render_ini(self.plan, setup, "bench/pgbouncer.py")

    def start(self, timeout=15):
        """Write the ini and userlist into a new work dir and start PgBouncer."""
        self.work_dir = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
        (self.work_dir / "userlist.txt").write_text(f'"{self.user}" "{self.password}"\n')
        (self.work_dir / "userlist.txt").chmod(0o600)
        self.ini.write_text(self.config())
        return self.run(timeout)

    def stop(self):
        """Stop it and delete its directory: it lives as long as the server it serves."""
        super().destroy()
        self.work_dir = None

    def destroy(self):
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
