"""The matrix: server shapes (variants), database configurations and pages.

Every configuration sets every database knob the site reads (docs/development.md,
"Configuration"), so nothing leaks in from the caller's environment or from one
configuration to the next.
"""

import re
from dataclasses import dataclass

from persistent_backend import deployment

# How the site reaches PostgreSQL: over TCP with a password (as in production), over the
# unix socket with a password (the local cluster's default), or through PgBouncer (TCP).
ROUTE_TCP = "tcp"
ROUTE_UNIX = "unix"
ROUTE_PGBOUNCER = "pgbouncer"

# The settings switch for the dashboard's metrics middleware (on unless "0").
METRICS_SWITCH = "DASHBOARD_METRICS"

REFERENCE = "connect-per-request"  # the seed's "before": every ratio is taken against it
PGBOUNCER_PERSISTENT = "persistent_backend+pgbouncer"  # the path past one host
UPPER_BOUND = "django-persistent"  # zero connect cost: what persistence can at best reach
UPPER_BOUND_PSYCOPG3 = "django-persistent-psycopg3"  # the same on psycopg 3
CONTROL = "django-persistent-control"  # UPPER_BOUND again: what identical code varies by
LEND_TRANSACTION = "persistent-pool-lend-transaction"
PREPARED = "persistent-prepared"
NO_METRICS = "persistent-no-metrics"


@dataclass(frozen=True)
class Variant:
    """A daemon shape: mod_wsgi-express --processes x --threads.

    ``clients``: wrk connections for this shape (None: the run's --concurrency).
    """

    name: str
    processes: int
    threads: int
    clients: int | None = None

    @property
    def shape(self):
        return f"{self.processes}x{self.threads}"

    def load(self, concurrency):
        """The wrk connections to drive this shape with, given the run's --concurrency."""
        return self.clients or concurrency

    @property
    def paired_mode(self):
        """The persistent_backend mode this shape pairs with (what mode "auto" picks)."""
        return deployment.mode_for_threads(self.threads)

    def describe(self):
        return f"{self.name} ({self.processes} processes x {self.threads} threads)"


NAMED_VARIANTS = {
    "prefork": Variant("prefork", 2, 1),
    "threaded": Variant("threaded", 1, 8),
    "hybrid": Variant("hybrid", 2, 4),
    # Many threads, one client per thread: every thread serves, so a backend per thread
    # (Django's persistent connections) shows against lending per transaction.
    "wide": Variant("wide", 2, 16, clients=32),
}
DEFAULT_VARIANTS = ("prefork", "threaded")


def parse_variant(text):
    """``prefork`` | ``threaded`` | ``hybrid`` | ``wide`` | ``PxT`` | ``NAME=PxT``."""
    if text in NAMED_VARIANTS:
        return NAMED_VARIANTS[text]
    match = re.fullmatch(r"(?:([a-z][a-z0-9_-]*)=)?(\d+)x(\d+)", text)
    if not match or int(match[2]) < 1 or int(match[3]) < 1:
        raise ValueError(
            f"variant {text!r}: use {', '.join(NAMED_VARIANTS)}, PxT (e.g. 4x2) or NAME=PxT"
        )
    processes, threads = int(match[2]), int(match[3])
    return Variant(match[1] or f"{processes}x{threads}", processes, threads)


@dataclass(frozen=True)
class Config:
    """One way of running the site's database access."""

    name: str
    summary: str
    engine: str = "django.db.backends.postgresql"
    route: str = ROUTE_TCP
    conn_max_age: str = "0"
    health_checks: bool = False
    django_pool: bool = False
    psycopg: str | None = None  # None: the run's --psycopg
    persistent_mode: str | None = None  # "paired": the variant's paired mode
    metrics: bool = True
    pgbouncer: bool = False  # persistent_backend's pgbouncer=True (transaction pooling)
    lend: str | None = None  # persistent_backend's lend ("request" | "transaction")
    prepared: bool = False  # persistent_backend's prepared_statements=True (psycopg 3)

    def mode_for(self, variant):
        if self.persistent_mode == "paired":
            return variant.paired_mode
        return self.persistent_mode

    def env(self, variant, psycopg="2"):
        """The site's database environment for this configuration in ``variant``."""
        mode = self.mode_for(variant)
        return {
            "DJANGO_DB_ENGINE": self.engine,
            "DJANGO_CONN_MAX_AGE": self.conn_max_age,
            "DJANGO_CONN_HEALTH_CHECKS": "1" if self.health_checks else "0",
            "DJANGO_DB_POOL": "1" if self.django_pool else "0",
            "DJANGO_PSYCOPG": self.psycopg or psycopg,
            "PERSISTENT_MODE": mode or "auto",
            "PERSISTENT_RESET": "rollback",
            "PERSISTENT_MAX_SIZE": "",
            "PERSISTENT_PGBOUNCER": "1" if self.pgbouncer else "0",
            "PERSISTENT_LEND": self.lend or "",
            "PERSISTENT_PREPARED": "1" if self.prepared else "0",
            METRICS_SWITCH: "1" if self.metrics else "0",
        }

    def label(self, variant):
        mode = self.mode_for(variant)
        if self.persistent_mode == "paired":
            return f"{self.name} ({mode})"
        return self.name


CONFIGS = [
    Config(
        REFERENCE,
        "stock backend, CONN_MAX_AGE=0: a new connection (TCP, scram-sha-256) per request",
    ),
    Config(
        "connect-per-request-unix",
        "the same over the unix socket (scram-sha-256), the local cluster's default",
        route=ROUTE_UNIX,
    ),
    Config(UPPER_BOUND, "stock backend, CONN_MAX_AGE=None", conn_max_age="none"),
    Config(
        UPPER_BOUND_PSYCOPG3,
        "stock backend, CONN_MAX_AGE=None, on psycopg 3 (client-side binding, "
        "prepare_threshold=None): the reference for the prepared mode",
        conn_max_age="none",
        psycopg="3",
    ),
    Config(
        "django-health-checks",
        "stock backend, CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=True",
        conn_max_age="none",
        health_checks=True,
    ),
    Config(
        "django-pool",
        "Django's native psycopg 3 pool (OPTIONS['pool']=True, psycopg_pool defaults)",
        django_pool=True,
        psycopg="3",
    ),
    Config(
        "pgbouncer",
        "stock backend, CONN_MAX_AGE=0, through PgBouncer (transaction pooling, "
        "default_pool_size = processes x threads)",
        route=ROUTE_PGBOUNCER,
    ),
    Config(
        "persistent-process",
        "persistent_backend, mode process",
        engine="persistent_backend",
        persistent_mode="process",
    ),
    Config(
        "persistent-thread",
        "persistent_backend, mode thread",
        engine="persistent_backend",
        persistent_mode="thread",
    ),
    Config(
        "persistent-pool",
        "persistent_backend, mode pool",
        engine="persistent_backend",
        persistent_mode="pool",
    ),
    # Mid-matrix, so that in a round it runs as far from django-persistent as the
    # configurations compared with it (runs take the matrix order, then rotate).
    Config(
        CONTROL,
        "stock backend, CONN_MAX_AGE=None: django-persistent run a second time in each "
        "round, whose ratio to it (identical code) shows how much the host alone moves a "
        "ratio",
        conn_max_age="none",
    ),
    Config(
        LEND_TRANSACTION,
        "persistent_backend, mode pool, lend=transaction (a connection goes back to the "
        "pool between transactions)",
        engine="persistent_backend",
        persistent_mode="pool",
        lend="transaction",
    ),
    Config(
        PREPARED,
        "persistent_backend in the variant's paired mode on psycopg 3 with "
        "prepared_statements=True (server-side binding, automatic preparation)",
        engine="persistent_backend",
        psycopg="3",
        persistent_mode="paired",
        prepared=True,
    ),
    Config(
        PGBOUNCER_PERSISTENT,
        "persistent_backend in the variant's paired mode with pgbouncer=True, through "
        "PgBouncer (transaction pooling, pool sized by pgbouncer_conf for this machine)",
        engine="persistent_backend",
        route=ROUTE_PGBOUNCER,
        persistent_mode="paired",
        pgbouncer=True,
    ),
    Config(
        NO_METRICS,
        f"persistent_backend in the variant's paired mode, without the dashboard's "
        f"metrics middleware ({METRICS_SWITCH}=0)",
        engine="persistent_backend",
        persistent_mode="paired",
        metrics=False,
    ),
]
CONFIGS_BY_NAME = {config.name: config for config in CONFIGS}


def persistent_name(mode):
    return f"persistent-{mode}"


@dataclass(frozen=True)
class ConfigSet:
    """A named bench: its configurations, and the variants and pages it runs by default
    (None: the bench's defaults); --variant, --page and --config override or add."""

    name: str
    summary: str
    configs: tuple
    variants: tuple | None = None
    pages: tuple | None = None
    slices: int | None = None  # --slices (None: 1)


CONFIG_SETS = {
    "matrix": ConfigSet(
        "matrix",
        "every configuration but issue 16's (the default)",
        tuple(
            config.name
            for config in CONFIGS
            if config.name not in {UPPER_BOUND_PSYCOPG3, CONTROL, LEND_TRANSACTION, PREPARED}
        ),
    ),
    "performance": ConfigSet(
        "performance",
        "issue 16's acceptance: persistent_backend's modes against Django's persistent "
        "connections, lending per transaction, prepared statements, the metrics middleware",
        (
            UPPER_BOUND,
            UPPER_BOUND_PSYCOPG3,
            persistent_name("process"),
            persistent_name("thread"),
            persistent_name("pool"),
            CONTROL,
            LEND_TRANSACTION,
            PREPARED,
            NO_METRICS,
        ),
        variants=("prefork", "threaded", "wide"),
        pages=("items",),
        slices=5,
    ),
    "all": ConfigSet("all", "every configuration", tuple(CONFIGS_BY_NAME)),
}
DEFAULT_SET = "matrix"


def select_configs(names):
    """The configurations named (in matrix order), or the default set's."""
    if not names:
        names = CONFIG_SETS[DEFAULT_SET].configs
    unknown = [name for name in names if name not in CONFIGS_BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown configuration(s) {', '.join(unknown)}: choose from "
            + ", ".join(CONFIGS_BY_NAME)
        )
    return [config for config in CONFIGS if config.name in names]


@dataclass(frozen=True)
class Page:
    key: str  # "items" | "nodb"
    path: str
    title: str


def pages(item_id, keys=("items", "nodb")):
    known = {
        "items": Page("items", f"/items/{item_id}/", "/items/<id>/"),
        "nodb": Page("nodb", "/nodb/", "/nodb/"),
    }
    return [known[key] for key in keys]
