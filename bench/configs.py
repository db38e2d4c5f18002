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


@dataclass(frozen=True)
class Variant:
    """A daemon shape: mod_wsgi-express --processes x --threads."""

    name: str
    processes: int
    threads: int

    @property
    def shape(self):
        return f"{self.processes}x{self.threads}"

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
}
DEFAULT_VARIANTS = ("prefork", "threaded")


def parse_variant(text):
    """``prefork`` | ``threaded`` | ``hybrid`` | ``PxT`` | ``NAME=PxT``."""
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
        "persistent-no-metrics",
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


def select_configs(names):
    """The configurations named (in matrix order), or all of them."""
    if not names:
        return list(CONFIGS)
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
