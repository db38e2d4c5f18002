"""A real PgBouncer (Debian's package) in transaction pooling mode, on a free port.

Its pgbouncer.ini is the one ``manage.py pgbouncer_conf`` writes (apache_conf.pgbouncer),
for the pool the caller sizes: ``pool_plan(variant)`` is the generator's sizing for this
machine, ``pool_plan(variant, pool_size=N, reserve_pool_size=0)`` a fixed pool.
Clients (the site) and PgBouncer itself both authenticate with scram-sha-256; PgBouncer
reaches PostgreSQL over TCP like the site does in the other configurations. It runs as
the ``postgres`` OS user when started as root (PgBouncer refuses to run as root).
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from apache_conf import pgbouncer as generator
from apache_conf.sizing import Budget, Machine, Shape
from tests.support.pgcluster import free_port

RUN_AS = "postgres"


def pgbouncer_binary():
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("pgbouncer is not installed: apt-get install pgbouncer")


def pgbouncer_version():
    out = subprocess.run([pgbouncer_binary(), "--version"], capture_output=True, text=True)
    return (out.stdout.strip().splitlines() or ["unknown"])[0]


def shape_of(processes, threads):
    """The apache_conf variant with this daemon shape (and its persistent_backend mode)."""
    variant = "prefork" if threads == 1 else "threaded" if processes == 1 else "hybrid"
    return Shape(variant, processes, threads)


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


def start_pgbouncer(bouncer, ini, work_dir, timeout):
    """Run PgBouncer on ``ini`` in the foreground and return once it accepts connections.

    ``bouncer`` is the object that owns the process (``PgBouncer`` here, the tests'
    ``Bouncer``): it gets the Popen as ``bouncer.proc`` and gives ``host``, ``port``,
    ``logs()`` and ``stop()``. As root, ``work_dir`` and its files are handed to ``RUN_AS``
    first and PgBouncer runs as that user. RuntimeError (with the log) if PgBouncer exits;
    ``bouncer.stop()`` then TimeoutError if it does not listen within ``timeout`` seconds.
    """
    user = None
    if os.geteuid() == 0:
        user = RUN_AS
        entry = pwd.getpwnam(RUN_AS)
        for path in [work_dir, *work_dir.iterdir()]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    bouncer.proc = subprocess.Popen(
        [pgbouncer_binary(), str(ini)],
        user=user,
        group=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=work_dir,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bouncer.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited early:\n{bouncer.logs()}")
        try:
            socket.create_connection((bouncer.host, bouncer.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    bouncer.stop()
    raise TimeoutError(f"pgbouncer not listening on {bouncer.port} after {timeout}s")


class PgBouncer:
    """One PgBouncer in front of ``db_host:db_port/dbname`` for ``user``/``password``."""

    def __init__(self, db_host, db_port, dbname, user, password, plan, port=None):
        self.db_host = db_host
        self.db_port = db_port
        self.dbname = dbname
        self.user = user
        self.password = password
        self.plan = plan
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.work_dir = None
        self.proc = None

    @property
    def pool_size(self):
        return self.plan.pool_size

    def config(self):
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
        self.work_dir = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
        (self.work_dir / "userlist.txt").write_text(f'"{self.user}" "{self.password}"\n')
        (self.work_dir / "pgbouncer.ini").write_text(self.config())
        (self.work_dir / "userlist.txt").chmod(0o600)
        start_pgbouncer(self, self.work_dir / "pgbouncer.ini", self.work_dir, timeout)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def logs(self):
        path = self.work_dir / "pgbouncer.log" if self.work_dir else None
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
