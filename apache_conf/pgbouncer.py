"""PgBouncer in front of PostgreSQL: ``pgbouncer.ini`` (and a ``userlist.txt`` template) sized
from the same inputs as the Apache configs (``python site/manage.py pgbouncer_conf``).

Without PgBouncer every web process keeps its connections on PostgreSQL, and every host
adds its own (apache_conf's arithmetic)::

    needed = processes x connections per process x hosts        (<= usable)

Through PgBouncer in transaction pooling those are client connections to PgBouncer, which
cost PostgreSQL nothing; PostgreSQL sees only PgBouncer's server connections::

    clients  = hosts x processes x connections per process     (persistent_backend's, kept)
    pool     = min(requests in flight, 2 x PostgreSQL's cores)  (default_pool_size)
    reserve  = ceil(pool / 4)                                   (reserve_pool_size)
    backends = pool + reserve                                   (<= usable, max_db_connections)

with ``requests in flight = hosts x processes x threads`` and ``usable`` as apache_conf
reads it (max_connections minus reserved slots, others' connections and a spare). More
transactions than ~2 per core at once only queue inside PostgreSQL (these are short,
CPU-bound statements); they queue in PgBouncer instead, where waiting costs no backend.

Lifetimes follow persistent_backend's options (the site's settings, else its defaults), so
a PostgreSQL backend lives as long behind PgBouncer as it would held by the site:
``server_lifetime = max_age``, ``server_idle_timeout = idle_timeout``, and a request waits
for a server connection at most ``checkout_timeout`` (``query_wait_timeout``).
"""

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from apache_conf import render
from apache_conf.sizing import (
    Budget,
    Machine,
    Shape,
    SizingError,
    requested_shape,
)
from persistent_backend.options import Options

INI = "pgbouncer.ini"
USERLIST = "userlist.txt"
DEFAULT_OUT_DIR = render.REPO_DIR / "var" / "pgbouncer"
DEFAULT_VARIANT = "prefork"
#: Server connections per PostgreSQL core: short CPU-bound transactions gain nothing beyond.
SERVERS_PER_CORE = 2
#: Extra server connections, as a share of the pool, for bursts (reserve_pool_size).
RESERVE_SHARE = 0.25
#: Client connections kept free for manage.py, cron jobs, psql and the admin console.
CLIENT_HEADROOM = 10
#: During a graceful restart the old daemons keep their connections while new ones open.
RESTART_OVERLAP = 2
#: PgBouncer's own default server_lifetime, used when persistent_backend's max_age is None.
PGBOUNCER_DEFAULT_LIFETIME = 3600
#: Seconds PgBouncer waits after a failed server login before trying again (default 15).
SERVER_LOGIN_RETRY = 2
#: Seconds between PgBouncer's averages (SHOW STATS), which the dashboard shows.
STATS_PERIOD = 10
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ADDR_RE = re.compile(r"^(\*|[A-Za-z0-9_.:-]+(,[A-Za-z0-9_.:-]+)*)$")
UNSAFE_PATH_RE = re.compile(r"[\s'\"\\$;#]")


@dataclass(frozen=True)
class Lifetimes:
    """persistent_backend's lifetimes, which PgBouncer's server connections follow."""

    max_age: float | None = Options.max_age
    idle_timeout: float | None = Options.idle_timeout
    checkout_timeout: float = Options.checkout_timeout
    source: str = "persistent_backend's defaults"

    @classmethod
    def from_site_settings(cls):
        """The site's OPTIONS["persistent"] (its settings), else the backend's defaults."""
        from django.conf import settings

        db = settings.DATABASES.get("default") or {}
        if db.get("ENGINE") != "persistent_backend":
            return cls()
        options = Options.from_settings(db)
        return cls(
            options.max_age,
            options.idle_timeout,
            options.checkout_timeout,
            source="the site's OPTIONS['persistent']",
        )

    def describe(self):
        """One line for the ini's header: the three lifetimes in seconds."""

        def text(value):
            return "None" if value is None else f"{value:g} s"

        return (
            f"max_age {text(self.max_age)}, idle_timeout {text(self.idle_timeout)},"
            f" checkout_timeout {text(self.checkout_timeout)}"
        )

    @property
    def server_lifetime(self):
        """max_age rounded to whole seconds (PgBouncer's own default when None)."""
        if self.max_age is None:
            return PGBOUNCER_DEFAULT_LIFETIME
        return max(1, round(self.max_age))

    @property
    def server_idle_timeout(self):
        """idle_timeout in whole seconds (0: never, when None)."""
        return 0 if self.idle_timeout is None else max(1, round(self.idle_timeout))

    @property
    def query_wait_timeout(self):
        """checkout_timeout rounded up: a client waits no longer than the pool would."""
        return max(1, math.ceil(self.checkout_timeout))

    @property
    def reserve_pool_timeout(self):
        """Half the query wait: the reserve opens before a client gives up."""
        return _seconds(self.query_wait_timeout / 2)


def _seconds(value):
    return f"{value:g}"


@dataclass(frozen=True)
class PoolPlan:
    """A site shape on ``hosts`` web hosts, multiplexed by one PgBouncer onto PostgreSQL."""

    shape: Shape
    machine: Machine
    budget: Budget
    hosts: int
    db_cores: int
    pool_size: int
    reserve_pool_size: int
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    notes: tuple = ()

    @property
    def clients_per_host(self):
        """Connections one web host's daemons keep open to PgBouncer."""
        return self.shape.processes * self.shape.connections_per_process

    @property
    def clients(self):
        """Client connections the site keeps open to PgBouncer (persistent_backend's)."""
        return self.hosts * self.clients_per_host

    @property
    def in_flight(self):
        """Requests all hosts serve at once: at most one transaction each at a time."""
        return self.hosts * self.shape.capacity

    @property
    def admin_clients(self):
        """The dashboard's admin-console connections: one per daemon process."""
        return self.hosts * self.shape.processes

    @property
    def max_client_conn(self):
        """Clients PgBouncer accepts: the site's and the dashboard's admin connections,
        RESTART_OVERLAP times (old and new daemons during a restart), plus headroom."""
        return RESTART_OVERLAP * (self.clients + self.admin_clients) + CLIENT_HEADROOM

    @property
    def servers(self):
        """PostgreSQL connections PgBouncer may open (pool plus reserve)."""
        return self.pool_size + self.reserve_pool_size

    @property
    def direct_needed(self):
        """PostgreSQL connections the same site would hold without PgBouncer."""
        return self.shape.connections(self.hosts)

    @property
    def cpu_bound(self):
        """Server connections worth having for the database host's cores."""
        return SERVERS_PER_CORE * self.db_cores

    def budget_lines(self):
        """The arithmetic in the ini's header (and the README's)."""
        s = self.shape
        hosts = f"{self.hosts} host{'s' if self.hosts != 1 else ''}"
        per = f"{s.connections_per_process} per process (PERSISTENT_MODE={s.mode})"
        direct_verdict = "fits" if self.direct_needed <= self.budget.usable else "over budget"
        return [
            *(f"usable   = {line}" for line in self.budget.arithmetic()),
            f"without PgBouncer: {s.processes} processes x {per} x {hosts}"
            f" = {self.direct_needed} PostgreSQL connections ({direct_verdict}:"
            f" {self.budget.usable} usable)",
            f"clients  = {hosts} x {s.processes} processes x {s.connections_per_process}"
            f" per process = {self.clients} (to PgBouncer; no PostgreSQL backend each)",
            f"pool     = min(requests in flight {self.in_flight} = {hosts} x {s.processes}"
            f" x {s.threads} thread{'s' if s.threads != 1 else ''},"
            f" {SERVERS_PER_CORE} x {self.db_cores} PostgreSQL cores = {self.cpu_bound},"
            f" usable {self.budget.usable}) = {self.pool_size}",
            f"reserve  = {self.reserve_pool_size} (ceil(pool / {1 / RESERVE_SHARE:g}),"
            " within usable)",
            f"backends = pool {self.pool_size} + reserve {self.reserve_pool_size}"
            f" = {self.servers} <= {self.budget.usable} usable",
            f"max_client_conn = {RESTART_OVERLAP} x (clients {self.clients}"
            f" + dashboard admin connections {self.admin_clients}) + {CLIENT_HEADROOM}"
            f" = {self.max_client_conn}",
        ]


def size(
    shape,
    machine,
    budget,
    hosts=1,
    db_cores=None,
    pool_size=None,
    reserve_pool_size=None,
    lifetimes=None,
    force=False,
):
    """The PoolPlan for ``shape`` on ``hosts``; SizingError when PostgreSQL cannot take it."""
    if hosts < 1:
        raise SizingError("--hosts must be at least 1")
    db_cores = machine.cores if db_cores is None else db_cores
    if db_cores < 1:
        raise SizingError("--db-cores must be at least 1")
    for value, flag in ((pool_size, "--pool-size"), (reserve_pool_size, "--reserve-pool-size")):
        if value is not None and value < (1 if flag == "--pool-size" else 0):
            raise SizingError(f"{flag} {value}: too small")
    usable = budget.usable
    notes = []
    if pool_size is None:
        wanted = min(hosts * shape.capacity, SERVERS_PER_CORE * db_cores)
        pool_size = max(1, min(wanted, usable))
        if pool_size < wanted:
            notes.append(f"pool sized down from {wanted} to the {usable} usable connections")
    if reserve_pool_size is None:
        reserve_pool_size = min(math.ceil(pool_size * RESERVE_SHARE), max(0, usable - pool_size))
    result = PoolPlan(
        shape,
        machine,
        budget,
        hosts,
        db_cores,
        pool_size,
        reserve_pool_size,
        lifetimes or Lifetimes(),
        tuple(notes),
    )
    if result.servers > usable:
        if not force:
            raise SizingError(
                f"refused: PgBouncer would open up to {result.servers} PostgreSQL connections"
                f" (pool {pool_size} + reserve {reserve_pool_size}) but only {usable} are usable",
                [
                    *(f"  usable = {line}" for line in budget.arithmetic()),
                    f"  fits: --pool-size {max(1, usable)} --reserve-pool-size 0; or raise"
                    f" max_connections to {budget.connections_to_fit(result.servers)};"
                    " or pass --force",
                ],
            )
        result = replace(result, notes=(*notes, "over budget, written anyway (--force)"))
    if shape.processes > machine.max_processes and not force:
        raise SizingError(
            f"refused: {shape.processes} daemon processes per host need more than half of"
            f" {machine.memory_gib:.1f} GiB ({machine.max_processes} processes fit)",
            ["  fits: fewer --processes; or pass --force"],
        )
    return result


# --- where PgBouncer runs ------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """Where PgBouncer listens, where PostgreSQL is, and PgBouncer's own files."""

    listen_addr: str = "*"
    listen_port: int = 6432
    unix_socket_dir: str = "/var/run/postgresql"
    db_host: str = "127.0.0.1"
    db_port: int = 5432
    db_name: str = "site"
    stats_user: str = "site"
    auth_file: Path = Path("/etc/pgbouncer/userlist.txt")
    logfile: Path = Path("/var/log/postgresql/pgbouncer.log")
    pidfile: Path = Path("/var/run/postgresql/pgbouncer.pid")
    log_connections: bool = True

    def __post_init__(self):
        for name in ("auth_file", "logfile", "pidfile"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        self.validate()

    def validate(self):
        """RenderError for a value the ini cannot carry (address, port, name)."""
        if not ADDR_RE.match(self.listen_addr):
            raise render.RenderError(f"--listen-addr {self.listen_addr!r}: '*' or addresses")
        for value, what in ((self.listen_port, "--listen-port"), (self.db_port, "--db-port")):
            if not 0 < value < 65536:
                raise render.RenderError(f"{what} {value}: use 1-65535")
        for value, what in ((self.db_name, "--db-name"), (self.stats_user, "--stats-user")):
            if not NAME_RE.match(value):
                raise render.RenderError(f"{what} {value!r}: use letters, digits, '.', '_', '-'")
        if not (NAME_RE.match(self.db_host) or self.db_host.startswith("/")) or (
            UNSAFE_PATH_RE.search(self.db_host)
        ):
            raise render.RenderError(f"--db-host {self.db_host!r}: a host name, address or dir")
        paths = [self.auth_file, self.logfile, self.pidfile]
        if self.unix_socket_dir:
            paths.append(Path(self.unix_socket_dir))
        for path in paths:
            if not path.is_absolute() or UNSAFE_PATH_RE.search(str(path)):
                raise render.RenderError(
                    f"{str(path)!r}: an absolute path without spaces, quotes, '$', ';' or '#'"
                )


# --- rendering -----------------------------------------------------------------------------
def render_ini(result: PoolPlan, setup: Setup, command: str) -> str:
    """pgbouncer.ini for ``result`` and ``setup``; ``command`` goes into its header."""
    return render.render_template(
        "apache_conf/pgbouncer.ini",
        {
            "plan": result,
            "shape": result.shape,
            "lifetimes": result.lifetimes,
            "setup": setup,
            "command": command,
            "server_login_retry": SERVER_LOGIN_RETRY,
            "stats_period": STATS_PERIOD,
            "restart_overlap": RESTART_OVERLAP,
            "client_headroom": CLIENT_HEADROOM,
        },
    )


def render_userlist(setup: Setup, command: str) -> str:
    """The userlist.txt template (comments only: no secret is written)."""
    return render.render_template("apache_conf/userlist.txt", {"setup": setup, "command": command})


def outputs(result, setup, command):
    """{file name: text} of the ini and the userlist template."""
    return {INI: render_ini(result, setup, command), USERLIST: render_userlist(setup, command)}


def is_template(text):
    """A userlist.txt this generator wrote (no secret), as opposed to one with real entries."""
    return all(not line.strip() or line.lstrip().startswith(";") for line in text.splitlines())


def write(files, out_dir, out):
    """Write the files; an existing userlist.txt with real entries is never replaced."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = out_dir / name
        if name == USERLIST and path.exists() and not is_template(path.read_text()):
            out.write(f"kept {path}: it holds entries (secrets), not the template\n")
            continue
        path.write_text(text)
        paths.append(path)
    return paths


# --- the documented reference, committed in apache_conf/generated/ -------------------------
REFERENCE_COMMAND = "/srv/site/.venv/bin/python /srv/site/site/manage.py pgbouncer_conf --reference"
REFERENCE_HOSTS = 3


def reference_plan():
    """The documented plan: the reference machine, max_connections 100, 3 hosts."""
    budget = Budget(max_connections=100, source="max_connections 100 (reference machine)")
    shape, _ = requested_shape(DEFAULT_VARIANT, render.REFERENCE_MACHINE)
    return size(shape, render.REFERENCE_MACHINE, budget, hosts=REFERENCE_HOSTS)


def reference_outputs():
    """pgbouncer.ini and userlist.txt for the reference machine, 3 web hosts, prefork."""
    return outputs(reference_plan(), Setup(), REFERENCE_COMMAND)
