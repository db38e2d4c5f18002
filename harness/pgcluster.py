"""A throwaway PostgreSQL cluster for tests: initdb, start, stop, restart, connect.

initdb and postgres refuse to run as root, so as root they run as the ``postgres`` OS
user (``runuser``) on a directory it owns. The cluster listens on 127.0.0.1 and on a
unix socket in its own directory, with trust authentication (it is never reachable
from outside the machine and is deleted at the end of the session), or, given a
``password`` for the superuser, with scram-sha-256 for every connection (as in production;
the benchmark uses that).
"""

import glob
import os
import shutil
import subprocess
from pathlib import Path

from harness.net import free_port
from harness.pgclient import PgClient
from harness.waiting import wait_until

PG_USER_OS = "postgres"


def pg_bindir():
    """The PostgreSQL server binaries: $PG_BINDIR, the newest Debian version, or $PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")


class PgCluster(PgClient):
    """One PostgreSQL server in ``base_dir`` (data/, socket/, log) on ``port``."""

    def __init__(self, base_dir, port=None, max_connections=100, settings=None, password=None):
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_file = self.base_dir / "postgres.log"
        self.port = port or free_port()
        self.max_connections = max_connections
        self.settings = settings or {}
        self.bindir = pg_bindir()
        self.host = "127.0.0.1"
        self.superuser = "postgres"
        self.password = password

    # -- running the server binaries ---------------------------------------------------
    def _run(self, *args, check=True, timeout=120):
        cmd = [str(self.bindir / args[0]), *map(str, args[1:])]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", PG_USER_OS, "--", *cmd]
        return subprocess.run(
            cmd, check=check, timeout=timeout, capture_output=True, text=True, cwd="/"
        )

    def init(self):
        """initdb (as the postgres OS user when root) and write the cluster's settings."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, PG_USER_OS, PG_USER_OS)
            shutil.chown(self.socket_dir, PG_USER_OS, PG_USER_OS)
        auth = ["--auth=trust"]
        pwfile = self.base_dir / "superuser-password"
        if self.password is not None:
            # initdb reads the superuser's password from a file; every line of the default
            # pg_hba.conf then asks for scram-sha-256.
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if os.geteuid() == 0:
                shutil.chown(pwfile, PG_USER_OS, PG_USER_OS)
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        try:
            self._run(
                "initdb",
                "-D",
                self.data_dir,
                "-U",
                self.superuser,
                *auth,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": self.max_connections,
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            # A throwaway cluster: durability costs time and proves nothing here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        with open(self.data_dir / "postgresql.auto.conf", "a") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        return self

    def start(self):
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "60", "start")
        return self

    def stop(self, mode="fast"):
        """pg_ctl stop in ``mode`` (no error if it is not running)."""
        self._run("pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode="fast"):
        """Stop and start again (what a server restart looks like to the site)."""
        self.stop(mode)
        self.start()

    def is_running(self):
        """True when pg_ctl status finds the postmaster."""
        return self._run("pg_ctl", "-D", self.data_dir, "status", check=False).returncode == 0

    def wait_ready(self, timeout=30):
        """Wait until it accepts connections (TimeoutError after ``timeout`` s)."""
        wait_until(self.accepting, timeout, 0.1, f"PostgreSQL accepting on port {self.port}")

    def destroy(self):
        """Stop immediately and delete the cluster's directory."""
        self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- talking to it -----------------------------------------------------------------
    def url(self, dbname="postgres", user=None):
        """A postgres:// URL for ``dbname`` (the superuser, with its password if any)."""
        auth = user or self.superuser
        if user is None and self.password is not None:
            auth += f":{self.password}"
        return f"postgres://{auth}@{self.host}:{self.port}/{dbname}"

    def connection_params(self):
        """psycopg2 connect() arguments for the superuser."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.superuser,
            **({"password": self.password} if self.password is not None else {}),
        }
