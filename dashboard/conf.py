"""The dashboard's settings, with their defaults (docs/dashboard.md "Settings" lists them)."""

from pathlib import Path

from django.conf import settings

from persistent_backend import deployment

DEFAULTS = {
    # Where every process publishes its figures (one small JSON file per process).
    "DASHBOARD_METRICS_DIR": None,  # None: VAR_DIR / "metrics"
    # Seconds between two publications of one process (its only writes).
    "DASHBOARD_PUBLISH_INTERVAL": 2,
    # Bearer token that opens /metrics without a staff session ("" = staff session only).
    "DASHBOARD_METRICS_TOKEN": "",
    # The first part of the application_name persistent_backend gives its connections
    # (None: the one the backend picks for the default database, from its
    # OPTIONS["persistent"]["application_name"], else OPTIONS["application_name"], else "site").
    "DASHBOARD_APPLICATION_PREFIX": None,
    # The user the daemons run as: a metrics directory created by root is handed to it.
    "DASHBOARD_DAEMON_USER": "www-data",
    # Other web hosts whose daemons publish into the same metrics directory (a shared
    # volume). Empty: only this host's records are read; any other is skipped as forged.
    "DASHBOARD_HOSTS": (),
    # Warnings.
    "DASHBOARD_IDLE_IN_TRANSACTION_WARN_SECONDS": 30,
    "DASHBOARD_BUDGET_WARN_RATIO": 0.8,
    # Memory the daemons may use, for the advice panel (None/0: half of this machine's).
    "DASHBOARD_MEMORY_BUDGET_MIB": None,
    # Characters of each query text kept for superusers.
    "DASHBOARD_QUERY_CHARS": 500,
}


def get(name):
    """The setting ``name``, else the dashboard's default for it."""
    return getattr(settings, name, DEFAULTS[name])


def application_prefix():
    """The application_name prefix of the site's sessions: the setting, else
    what the backend uses (OPTIONS["application_name"] included)."""
    value = get("DASHBOARD_APPLICATION_PREFIX")
    if value:
        return value
    return deployment.application_prefix(settings.DATABASES.get("default"))


def metrics_dir():
    """Where the processes publish their records (DASHBOARD_METRICS_DIR, else VAR_DIR/metrics)."""
    value = get("DASHBOARD_METRICS_DIR")
    if value:
        return Path(value)
    return Path(getattr(settings, "VAR_DIR", Path.cwd() / "var")) / "metrics"


def hosts():
    """Other hosts whose records the dashboard accepts (DASHBOARD_HOSTS)."""
    return set(get("DASHBOARD_HOSTS"))


def publish_interval():
    """Seconds between a process's publications (at least 0.2)."""
    return max(0.2, float(get("DASHBOARD_PUBLISH_INTERVAL")))
