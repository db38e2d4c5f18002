"""Start and stop the site for one configuration: mod_wsgi-express (and PgBouncer if used).

Each start gets a fresh server root in a directory the daemon user owns, a free port,
an environment that names every setting, and the configuration's own login role
(``BenchDatabase.site_role``), so nothing carries over between configurations and two
sites up at once are told apart in PostgreSQL. PgBouncer lives exactly as long as the
server it serves: its idle server connections must not count as another configuration's
backends.
"""

import os
import shutil
from dataclasses import dataclass

from bench.configs import ROUTE_PGBOUNCER, ROUTE_UNIX
from bench.database import DB_NAME
from bench.pgbouncer import PgBouncer, pool_plan
from harness.modwsgi import DAEMON_USER, ModWsgiServer, daemon_dir, get
from harness.site import clean_environ
from harness.waiting import poll

# Apache's own children all started at once and all kept, as apache_conf's generated
# configs do (StartServers x ThreadsPerChild = MaxSpareThreads = MaxRequestWorkers). With
# mod_wsgi-express's defaults the event MPM starts one child and stops idle ones, and
# connections that arrive in a burst while it starts or stops children are reset: wrk
# counted them as read errors at the start of a run, and of every slice after its site
# sat idle (32 connections at once in the wide shape).
FRONT_END_ARGS = (
    "--initial-workers", "1",
    "--minimum-spare-workers", "0.25",
    "--maximum-spare-workers", "1",
)  # fmt: skip


@dataclass
class Counters:
    """What a site did up to a moment it was idle: between two readings every request is
    complete, so its statements and itself are both counted."""

    served: int  # requests Apache served, the bench's own status requests left out
    statements: dict  # pg_stat_statements of the site's role: {queryid: (calls, text)}


class SiteUnderTest:
    """The site served in ``variant`` with ``config``'s database settings."""

    def __init__(self, database, config, variant, psycopg="2", extra_args=()):
        self.database = database
        self.config = config
        self.variant = variant
        self.psycopg = psycopg
        # mod_status: Apache's own count of requests served ("Total Accesses"), so that
        # statements per request divide by what the server did, in-flight ones included.
        self.extra_args = ["--server-status", *FRONT_END_ARGS, *extra_args]
        self.status_calls = 0
        self.bouncer = None
        self.server = None
        self.work_dir = None
        self.role = database.site_role(config.name)

    @property
    def url(self):
        return self.server.url

    def database_url(self):
        """The site's DATABASE_URL for the configuration's route (TCP, socket, PgBouncer)."""
        if self.config.route == ROUTE_PGBOUNCER:
            return self.database.url(host=self.bouncer.host, port=self.bouncer.port, user=self.role)
        if self.config.route == ROUTE_UNIX:
            return self.database.url(route="unix", user=self.role)
        return self.database.url(user=self.role)

    def start(self):
        """Start PgBouncer if the configuration routes through it, then the site."""
        self.work_dir = daemon_dir(f"bench-site-{self.config.name}-")
        (self.work_dir / "var").mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.work_dir / "var", DAEMON_USER, DAEMON_USER)
        try:
            if self.config.route == ROUTE_PGBOUNCER:
                self.bouncer = PgBouncer(
                    self.database.cluster.host,
                    self.database.cluster.port,
                    DB_NAME,
                    self.role,
                    self.database.password,
                    self.pool_plan(),
                ).start()
            env = {
                **self.database.site_env(self.work_dir, url=self.database_url()),
                **self.config.env(self.variant, self.psycopg),
            }
            self.server = ModWsgiServer(
                self.work_dir,
                env,
                processes=self.variant.processes,
                threads=self.variant.threads,
                extra_args=self.extra_args,
                base_env=clean_environ(),
            )
            self.server.start(timeout=60)
        except BaseException:
            # The exception names the server's (or PgBouncer's) log already.
            self.stop()
            raise
        return self

    def pool_plan(self):
        """PgBouncer's pool: pgbouncer_conf's sizing for this machine when the site runs
        persistent_backend with pgbouncer=True; for the stock backend, one server connection
        per daemon thread, so that no request waits for one (as in the other configurations).
        """
        processes, threads = self.variant.processes, self.variant.threads
        max_connections = self.database.cluster.max_connections
        if self.config.pgbouncer:
            return pool_plan(processes, threads, max_connections)
        return pool_plan(processes, threads, max_connections, processes * threads, 0)

    def check(self, path):
        """One request before the load: a failing page is reported with the server's log."""
        status, body, _ = get(self.url + path, timeout=30)
        if status != 200:
            raise RuntimeError(
                f"{self.config.name}: GET {path} answered {status}: {body[:300]}\n{self.logs()}"
            )

    def server_status(self):
        """(requests served so far, busy workers) from ``/server-status?auto``.

        Each status request is itself counted once it completes: ``status_calls`` says how
        many were made, so callers can take them out of a difference.
        """
        self.status_calls += 1
        status, body, _ = get(self.url + "/server-status?auto", timeout=10)
        if status != 200:
            raise RuntimeError(f"/server-status answered {status}")
        fields = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
        return int(fields["Total Accesses"]), int(fields["BusyWorkers"])

    def wait_quiet(self, timeout=10):
        """Wait until only the status request itself is busy; return (accesses, calls)."""
        status = []
        poll(lambda: status.append(self.server_status()) or status[-1][1] <= 1, timeout)
        return status[-1][0], self.status_calls

    def counters(self):
        """The site's ``Counters``, read once it is idle."""
        accesses, calls = self.wait_quiet()
        return Counters(accesses - calls, self.database.statements(self.role))

    def daemon_pids(self):
        return self.server.daemon_pids() if self.server else []

    def logs(self):
        """The server's logs, and PgBouncer's when used."""
        parts = [self.server.logs()] if self.server else []
        if self.bouncer is not None:
            parts.append(f"--- pgbouncer.log ---\n{self.bouncer.logs()}")
        return "\n".join(parts)

    def stop(self):
        """Stop the site and PgBouncer (idempotent)."""
        if self.server is not None:
            self.server.stop()
        if self.bouncer is not None:
            self.bouncer.stop()
            self.bouncer = None
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
