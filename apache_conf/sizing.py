"""How many daemon processes and threads, and whether PostgreSQL can take their connections.

Three variants, each paired with a persistent_backend mode:

========  ==================  =====================  ==========================
variant   processes x threads  PERSISTENT_MODE        connections per process
========  ==================  =====================  ==========================
prefork   max(2, cores) x 1   process                1
threaded  1 x T               pool                   T (pool max_size = threads)
hybrid    P x 4               pool                   4
========  ==================  =====================  ==========================

with T = 2 x cores between 4 and 15 and P = max(2, cores / 2); processes are also capped
so that they fit in half of the memory at ``PROCESS_MIB`` each.

The connection budget is PostgreSQL's, shared by every host running the site::

    usable = max_connections - superuser_reserved_connections - reserved_connections
             - connections used by others - spare
    needed = processes x connections per process x hosts   (must be <= usable)

``python -m apache_conf shape --variant prefork`` prints the shape for local runs
(``PROCESSES=2 THREADS=1 PERSISTENT_MODE=process``) for deploy.sh.
"""

from dataclasses import dataclass, replace

import psutil

from apache_conf.frontend import Frontend
from persistent_backend import deployment

VARIANTS = ("prefork", "threaded", "hybrid")

#: Resident memory budgeted per daemon process (Python + Django + psycopg2, with headroom).
PROCESS_MIB = 128
#: Share of the machine's memory the daemons may take (PostgreSQL shares the host).
MEMORY_SHARE = 0.5
#: mod_wsgi's default thread count, and the most threads a variant gets by default: beyond
#: it the GIL adds contention without throughput.
MAX_DEFAULT_THREADS = 15
#: Threads per hybrid process.
HYBRID_THREADS = 4
#: The PERSISTENT_MODE each variant's config is written with: the mode the deployment
#: vocabulary pairs with the variant's kind of daemon (prefork: one thread; threaded and
#: hybrid: several). Per variant, not per shape: a threaded or hybrid daemon given
#: ``--threads 1`` keeps its pool (of one connection, the same budget as process mode), so
#: the config, deploy.sh's shape line and the budget header say the mode of the variant the
#: operator chose, and raising its threads later needs no change of mode.
MODES = {
    "prefork": deployment.mode_for_threads(1),
    "threaded": deployment.mode_for_threads(MAX_DEFAULT_THREADS),
    "hybrid": deployment.mode_for_threads(HYBRID_THREADS),
}
#: PostgreSQL's default superuser_reserved_connections, used when the server is unreachable.
PG_DEFAULT_SUPERUSER_RESERVED = 3
#: Connections kept free for manage.py, migrations, cron jobs and psql.
DEFAULT_SPARE = 2

GIB = 1024**3
MIB = 1024**2


class SizingError(Exception):
    """The request cannot be sized; ``str()`` is one line, ``details`` more lines."""

    def __init__(self, message, details=()):
        super().__init__(message)
        self.details = list(details)


# --- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    """Cores and memory the shapes are sized for (``detect()``: this machine)."""

    cores: int
    memory_bytes: int

    @classmethod
    def detect(cls, cores=None, memory_gib=None):
        """This machine (psutil), with either value overridden."""
        if cores is None:
            cores = psutil.cpu_count() or 1
            try:
                cores = min(cores, len(psutil.Process().cpu_affinity()))
            except (AttributeError, psutil.Error):
                pass
        memory = int(memory_gib * GIB) if memory_gib is not None else psutil.virtual_memory().total
        if cores < 1 or memory < PROCESS_MIB * MIB:
            raise SizingError(f"implausible machine: {cores} cores, {memory / GIB:.1f} GiB")
        return cls(cores=cores, memory_bytes=memory)

    @property
    def memory_gib(self):
        return self.memory_bytes / GIB

    @property
    def max_processes(self):
        """Daemon processes that fit in MEMORY_SHARE of the memory at PROCESS_MIB each."""
        return max(1, int(self.memory_bytes * MEMORY_SHARE // (PROCESS_MIB * MIB)))

    def describe(self):
        """One line for config headers: cores and memory."""
        return f"{self.cores} cores, {self.memory_gib:.1f} GiB"


@dataclass(frozen=True)
class Budget:
    """PostgreSQL's connection slots, and what is left for the site."""

    max_connections: int
    superuser_reserved: int = PG_DEFAULT_SUPERUSER_RESERVED
    reserved: int = 0  # reserved_connections (PostgreSQL 16+, pg_use_reserved_connections)
    others: int = 0  # client connections already open by anyone else
    spare: int = DEFAULT_SPARE
    source: str = "given"
    role_limit: int = -1  # rolconnlimit of the site's role (-1: none)
    role_others: int = 0
    database_limit: int = -1  # datconnlimit of the site's database (-1: none)
    database_others: int = 0

    @property
    def server_usable(self):
        """Connections the server limit leaves the site (others and spare taken out)."""
        usable = deployment.usable_connections(
            self.max_connections, self.superuser_reserved, self.reserved
        )
        return usable - self.others - self.spare

    @property
    def limits(self):
        """(name, usable) for every limit that applies; the smallest one binds."""
        found = [("server", self.server_usable)]
        if self.role_limit >= 0:
            found.append(("role", self.role_limit - self.role_others - self.spare))
        if self.database_limit >= 0:
            found.append(("database", self.database_limit - self.database_others - self.spare))
        return found

    @property
    def usable(self):
        """The binding limit: the smallest of the server's, the role's, the database's."""
        return max(0, min(value for _, value in self.limits))

    def arithmetic(self):
        """Lines showing how ``usable`` is computed."""
        lines = [
            f"max_connections {self.max_connections}"
            f" - superuser_reserved_connections {self.superuser_reserved}"
            f" - reserved_connections {self.reserved}"
            f" - used by others {self.others}"
            f" - spare {self.spare} = {self.server_usable}"
        ]
        if self.role_limit >= 0:
            lines.append(
                f"role connection limit {self.role_limit} - used by the role {self.role_others}"
                f" - spare {self.spare} = {self.role_limit - self.role_others - self.spare}"
            )
        if self.database_limit >= 0:
            lines.append(
                f"database connection limit {self.database_limit}"
                f" - used in the database {self.database_others} - spare {self.spare}"
                f" = {self.database_limit - self.database_others - self.spare}"
            )
        return lines

    def connections_to_fit(self, needed):
        """max_connections that would make ``needed`` fit (server limit only)."""
        return self.max_connections + needed - self.server_usable


# --- shapes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """A variant's processes x threads (checked against what the variant means)."""

    variant: str
    processes: int
    threads: int

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise SizingError(f"unknown variant {self.variant!r}: use {', '.join(VARIANTS)}")
        if self.processes < 1 or self.threads < 1:
            raise SizingError("processes and threads must be at least 1")
        if self.variant == "prefork" and self.threads != 1:
            raise SizingError(
                "prefork runs one thread per process (PERSISTENT_MODE=process keeps one "
                "connection per process): use --variant hybrid for threads"
            )
        if self.variant == "threaded" and self.processes != 1:
            raise SizingError(
                "threaded runs one process (all threads share one pool): "
                "use --variant hybrid for more processes"
            )

    @property
    def mode(self):
        """The variant's PERSISTENT_MODE (see MODES: not re-derived from the threads)."""
        return MODES[self.variant]

    @property
    def connections_per_process(self):
        """process mode keeps 1 connection; the pool's max_size defaults to the threads."""
        return 1 if self.mode == "process" else self.threads

    @property
    def capacity(self):
        """Requests served at once: processes x threads."""
        return self.processes * self.threads

    def connections(self, hosts=1):
        """PostgreSQL connections the daemons of ``hosts`` web hosts hold at most."""
        return self.processes * self.connections_per_process * hosts

    def flags(self):
        """The command-line flags that request this shape."""
        return f"--variant {self.variant} --processes {self.processes} --threads {self.threads}"

    def shell(self):
        """One line for deploy.sh to eval: PROCESSES, THREADS, PERSISTENT_MODE."""
        return f"PROCESSES={self.processes} THREADS={self.threads} PERSISTENT_MODE={self.mode}"


def default_shape(variant, machine):
    """The shape this machine gets when no --processes/--threads are given."""
    if variant == "prefork":
        processes, threads = max(2, machine.cores), 1
    elif variant == "threaded":
        processes, threads = 1, min(MAX_DEFAULT_THREADS, max(4, 2 * machine.cores))
    else:
        processes, threads = max(2, machine.cores // 2), HYBRID_THREADS
    return Shape(variant, min(processes, machine.max_processes), threads)


def requested_shape(variant, machine, processes=None, threads=None):
    """Defaults for what is not given; (shape, explicit) with explicit True if any flag."""
    shape = default_shape(variant, machine)
    if variant == "prefork":
        threads = 1 if threads is None else threads
    elif variant == "threaded":
        processes = 1 if processes is None else processes
    explicit = (processes is not None and variant != "threaded") or (
        threads is not None and variant != "prefork"
    )
    shape = Shape(
        variant,
        shape.processes if processes is None else processes,
        shape.threads if threads is None else threads,
    )
    return shape, explicit


def fit(shape, usable, hosts=1, max_processes=None):
    """The largest shape of the same variant that needs at most ``usable`` connections.

    Keeps threads and drops processes first (prefork, hybrid); threaded drops threads;
    hybrid drops threads once it is down to one process. None if not even 1 x 1 fits.
    """
    max_processes = max_processes or shape.processes
    processes = min(shape.processes, max_processes)
    threads = shape.threads
    if shape.variant == "threaded":
        threads = min(threads, usable // hosts)
        return replace(shape, threads=threads) if threads >= 1 else None
    per_process = shape.connections_per_process
    processes = min(processes, usable // (per_process * hosts))
    if processes >= 1:
        return replace(shape, processes=processes)
    if shape.variant == "hybrid" and usable // hosts >= 1:
        return replace(shape, processes=1, threads=usable // hosts)
    return None


@dataclass(frozen=True)
class Plan:
    """A shape checked against the machine and the connection budget."""

    shape: Shape
    machine: Machine
    budget: Budget
    hosts: int = 1
    note: str = ""

    @property
    def needed(self):
        """PostgreSQL connections the plan's daemons hold on every host together."""
        return self.shape.connections(self.hosts)

    @property
    def over_budget(self):
        """True when ``needed`` exceeds the usable budget (written only with --force)."""
        return self.needed > self.budget.usable

    @property
    def frontend(self):
        """The Apache front end (event MPM) sized for the daemons' capacity."""
        return Frontend.for_capacity(self.shape.capacity)

    @property
    def over_memory(self):
        """True when the processes exceed what MEMORY_SHARE of the memory holds."""
        return self.shape.processes > self.machine.max_processes

    def budget_lines(self):
        """The budget arithmetic as comment lines for the config's header."""
        s = self.shape
        per = "connection" if s.connections_per_process == 1 else "connections"
        verdict = "<=" if not self.over_budget else ">"
        return [
            *(f"usable = {line}" for line in self.budget.arithmetic()),
            f"needed = {s.processes} process{'es' if s.processes != 1 else ''}"
            f" x {s.connections_per_process} {per} per process (PERSISTENT_MODE={s.mode})"
            f" x {self.hosts} host{'s' if self.hosts != 1 else ''}"
            f" = {self.needed} {verdict} {self.budget.usable} usable",
        ]


def plan(variant, machine, budget, hosts=1, processes=None, threads=None, force=False):
    """Size one variant; raise SizingError (refusal, with a proposal) unless it fits.

    Machine defaults are sized down to fit; explicit --processes/--threads are refused
    when over budget or memory, unless ``force``.
    """
    if hosts < 1:
        raise SizingError("--hosts must be at least 1")
    shape, explicit = requested_shape(variant, machine, processes, threads)
    result = Plan(shape, machine, budget, hosts)
    if not (result.over_budget or result.over_memory):
        return result
    if force:
        return replace(result, note="over budget or memory, written anyway (--force)")
    fitted = fit(shape, budget.usable, hosts, machine.max_processes)
    if fitted is not None and not explicit:
        return replace(
            result,
            shape=fitted,
            note=f"sized down from {shape.processes} x {shape.threads} to fit the budget",
        )
    raise refusal(result, fitted)


def refusal(result, fitted):
    """The SizingError for an over-budget or over-memory plan: why, numbers, proposal."""
    s, budget = result.shape, result.budget
    if result.over_budget:
        why = (
            f"refused: {s.variant} needs {result.needed} PostgreSQL connections"
            f" ({s.processes} x {s.connections_per_process} per process x {result.hosts}"
            f" host{'s' if result.hosts != 1 else ''}) but only {budget.usable} are usable"
        )
    else:
        why = (
            f"refused: {s.processes} daemon processes need about"
            f" {s.processes * PROCESS_MIB} MiB, more than {MEMORY_SHARE:.0%} of"
            f" {result.machine.memory_gib:.1f} GiB ({result.machine.max_processes} processes"
            f" at {PROCESS_MIB} MiB)"
        )
    details = [f"  usable = {line}" for line in budget.arithmetic()]
    options = []
    if fitted is not None:
        options.append(f"{fitted.flags()} ({fitted.connections(result.hosts)} connections)")
    if result.over_budget:
        options.append(f"raise max_connections to {budget.connections_to_fit(result.needed)}")
    options.append("pass --force")
    details.append("  fits: " + "; or ".join(options))
    return SizingError(why, details)
