"""``OPTIONS["persistent"]``: defaults, validation and libpq defaults."""

import math
from dataclasses import asdict, dataclass, fields

from django.core.exceptions import ImproperlyConfigured

from persistent_backend import deployment, pgbouncer, prepared

MODES = ("auto", "process", "thread", "pool")
RESETS = ("rollback", "discard")
LENDS = ("request", "transaction")  # when a pooled connection goes back (lending.py)

# libpq defaults so that a silent peer (host gone, half-open TCP) is noticed by the kernel:
# an idle socket whose keepalives fail turns readable/errored, which the zero-round-trip
# probe sees. They do nothing on unix sockets. OPTIONS of the database win.
KEEPALIVE_DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,  # milliseconds
}


@dataclass(frozen=True)
class Options:
    """Every key of ``OPTIONS["persistent"]``; all optional (docs/backend.md lists each)."""

    mode: str = "auto"
    max_size: int | None = None
    checkout_timeout: float = 5.0
    max_age: float | None = 1800.0
    jitter: float = 0.1
    max_uses: int | None = None
    idle_timeout: float | None = 300.0
    ping_after: float | None = None
    reset: str = "rollback"
    lend: str = "request"
    reopen: bool = False
    retry: bool = True
    housekeeping: float | None = None  # None: 30 s under a web server, off elsewhere
    application_name: str = deployment.DEFAULT_APPLICATION_NAME
    hostname: str | None = None  # host part of application_name (None: the short host name)
    pgbouncer: bool = False  # behind PgBouncer's transaction pooling (see pgbouncer.py)
    pgbouncer_max_prepared_statements: int = 0  # that PgBouncer's setting (see prepared.py)
    prepared_statements: bool = False  # server-side binding + psycopg's preparation
    processes: int | None = None
    threads: int | None = None

    @classmethod
    def from_settings(cls, settings_dict):
        """Parse ``settings_dict["OPTIONS"]["persistent"]``; ImproperlyConfigured if invalid."""
        raw = (settings_dict.get("OPTIONS") or {}).get("persistent") or {}
        if not isinstance(raw, dict):
            raise ImproperlyConfigured('OPTIONS["persistent"] must be a dict')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ImproperlyConfigured(
                f'OPTIONS["persistent"]: unknown key(s) {", ".join(unknown)}; '
                f"valid keys: {', '.join(sorted(known))}"
            )
        values = dict(raw)
        if "application_name" not in values:
            values["application_name"] = deployment.application_prefix(settings_dict)
        options = cls(**values)
        options.validate()
        return options

    def validate(self):
        """ImproperlyConfigured with the key and what to use, for the first invalid value."""

        def fail(key, why):
            raise ImproperlyConfigured(
                f'OPTIONS["persistent"]["{key}"] = {getattr(self, key)!r}: {why}'
            )

        if self.mode not in MODES:
            fail("mode", f"use one of {', '.join(MODES)}")
        if self.reset not in RESETS:
            fail("reset", f"use one of {', '.join(RESETS)}")
        if self.lend not in LENDS:
            fail("lend", f"use one of {', '.join(LENDS)}")
        if self.lend == "transaction" and self.reset == "discard":
            fail(
                "lend",
                'reset "discard" resets the session at every return: with lend '
                '"transaction" that is a DISCARD ALL per statement. Use reset "rollback" '
                "(a unit of work that set session state is still reset: pinning)",
            )
        for key in ("max_size", "max_uses", "processes", "threads"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                fail(key, "use a positive integer or None")
        for key in ("max_age", "idle_timeout", "ping_after", "housekeeping"):
            value = getattr(self, key)
            if value is not None and not _non_negative_number(value):
                fail(key, "use a number of seconds >= 0, or None")
        if not _non_negative_number(self.checkout_timeout):
            fail("checkout_timeout", "use a number of seconds >= 0")
        if not _non_negative_number(self.jitter) or self.jitter >= 1:
            fail("jitter", "use a fraction between 0 and 1 (0.1 = +/-10%)")
        for key in ("reopen", "retry"):
            if not isinstance(getattr(self, key), bool):
                fail(key, "use True or False")
        if not isinstance(self.application_name, str) or not self.application_name:
            fail("application_name", "use a non-empty string")
        if self.hostname is not None and not _valid_hostname(self.hostname):
            fail("hostname", "use a non-empty name without ':' or spaces (at most 63 bytes)")
        pgbouncer.validate_options(self, fail)
        prepared.validate_options(self, fail)

    def as_dict(self):
        """Every option and its value (``stats()``, the dashboard)."""
        return asdict(self)


def _non_negative_number(value):
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _valid_hostname(value):
    return (
        isinstance(value, str)
        and 0 < len(value.encode()) <= deployment.APPLICATION_NAME_MAX_BYTES
        and ":" not in value
        and not any(ch.isspace() for ch in value)
    )
