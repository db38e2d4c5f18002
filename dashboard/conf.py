"""The dashboard's settings, with their defaults (README "Dashboard" lists them)."""

from pathlib import Path

from django.conf import settings

DEFAULTS = {
    # Where every process publishes its figures (one small JSON file per process).
    "DASHBOARD_METRICS_DIR": None,  # None: VAR_DIR / "metrics"
    # Seconds between two publications of one process (its only writes).
    "DASHBOARD_PUBLISH_INTERVAL": 2,
    # Bearer token that opens /metrics without a staff session ("" = staff session only).
    "DASHBOARD_METRICS_TOKEN": "",
    # The first part of the application_name persistent_backend gives its connections
    # (None: the default database's OPTIONS["persistent"]["application_name"], or "site").
    "DASHBOARD_APPLICATION_PREFIX": None,
    # The user the daemons run as: a metrics directory created by root is handed to it.
    "DASHBOARD_DAEMON_USER": "www-data",
    # Warnings.
    "DASHBOARD_IDLE_IN_TRANSACTION_WARN_SECONDS": 30,
    "DASHBOARD_BUDGET_WARN_RATIO": 0.8,
    # Memory the daemons may use, for the advice panel (None/0: half of this machine's).
    "DASHBOARD_MEMORY_BUDGET_MIB": None,
    # Characters of each query text kept for superusers.
    "DASHBOARD_QUERY_CHARS": 500,
}


def get(name):
    return getattr(settings, name, DEFAULTS[name])


def application_prefix():
    value = get("DASHBOARD_APPLICATION_PREFIX")
    if value:
        return value
    options = settings.DATABASES["default"].get("OPTIONS") or {}
    return (options.get("persistent") or {}).get("application_name") or "site"


def metrics_dir():
    value = get("DASHBOARD_METRICS_DIR")
    if value:
        return Path(value)
    return Path(getattr(settings, "VAR_DIR", Path.cwd() / "var")) / "metrics"


def publish_interval():
    return max(0.2, float(get("DASHBOARD_PUBLISH_INTERVAL")))
