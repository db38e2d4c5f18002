"""Settings for the reference site, read from the environment and var/site.env.

See docs/development.md "Configuration" for every variable. DEBUG is off unless DJANGO_DEBUG says
otherwise, and a missing secret key is an error rather than a silent default.
"""

import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import REPO_DIR, Env, load_env_file

env = Env(load_env_file())

SITE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.str("DJANGO_VAR_DIR", str(REPO_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set: run ./deploy.sh setup (it writes var/site.env) "
            "or export DJANGO_SECRET_KEY"
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# Which PostgreSQL driver Django's backend uses: psycopg2 by default, even when psycopg 3
# is installed beside it (Django prefers psycopg 3 if it can import it).
PSYCOPG = env.str("DJANGO_PSYCOPG", "2")
if PSYCOPG == "2":
    sys.modules.setdefault("psycopg", None)
elif PSYCOPG != "3":
    raise ImproperlyConfigured(f"DJANGO_PSYCOPG={PSYCOPG!r}: use 2 or 3")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "catalog",
    "persistent_backend",
    "dashboard",
    "apache_conf",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.errors.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SITE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", "")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: run ./deploy.sh setup (it writes var/site.env) "
        "or export DATABASE_URL=postgres://user:password@host:port/name"
    )
DB_ENGINE = env.str("DJANGO_DB_ENGINE", "persistent_backend")
_db = dj_database_url.parse(DATABASE_URL, engine=DB_ENGINE)
_db["CONN_MAX_AGE"] = (
    None if env.str("DJANGO_CONN_MAX_AGE") == "none" else env.int("DJANGO_CONN_MAX_AGE", 0)
)
_db["CONN_HEALTH_CHECKS"] = env.bool("DJANGO_CONN_HEALTH_CHECKS", False)
_db.setdefault("OPTIONS", {})
# Fail fast (then 503) instead of hanging when the server does not answer.
_db["OPTIONS"].setdefault("connect_timeout", env.int("DJANGO_DB_CONNECT_TIMEOUT", 3))
if env.bool("DJANGO_DB_POOL", False):
    # Django's native pool (psycopg 3 only): the bench compares against it.
    _db["OPTIONS"]["pool"] = True
if DB_ENGINE == "persistent_backend":

    def _seconds(name):
        value = env.str(name, "")
        if value == "":
            return None
        if value.lower() == "none":
            return "none"
        try:
            return float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} is not a number of seconds") from None

    _db["OPTIONS"]["persistent"] = {
        key: (None if value == "none" else value)
        for key, value in {
            "mode": env.str("PERSISTENT_MODE", "auto"),
            "reset": env.str("PERSISTENT_RESET", "rollback"),
            "max_size": env.int("PERSISTENT_MAX_SIZE", None),
            "max_uses": env.int("PERSISTENT_MAX_USES", None),
            "max_age": _seconds("PERSISTENT_MAX_AGE"),
            "idle_timeout": _seconds("PERSISTENT_IDLE_TIMEOUT"),
            "checkout_timeout": _seconds("PERSISTENT_CHECKOUT_TIMEOUT"),
            "ping_after": _seconds("PERSISTENT_PING_AFTER"),
            "application_name": env.str("PERSISTENT_APPLICATION_NAME", None),
            "hostname": env.str("PERSISTENT_HOSTNAME", None) or None,
            "pgbouncer": env.bool("PERSISTENT_PGBOUNCER", False) or None,
            # Only when given: lending per transaction, prepared statements (psycopg 3).
            "lend": env.str("PERSISTENT_LEND", "") or None,
            "prepared_statements": env.bool("PERSISTENT_PREPARED", False) or None,
            "processes": env.int("PERSISTENT_PROCESSES", None),
            "threads": env.int("PERSISTENT_THREADS", None),
        }.items()
        if value is not None
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Security -------------------------------------------------------------------------
# On unless DEBUG or DJANGO_HTTPS=0 (deploy.sh's local plain-HTTP run passes DJANGO_HTTPS=0
# in the server's environment, never in var/site.env; config/wsgi.py warns once per daemon
# that starts with DEBUG and HTTPS both off).
HTTPS = env.bool("DJANGO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
# Both bind every subdomain of the site's domain (preload: for good, in the browsers' list):
# an operator's decision, so only when asked; `check --deploy` is told so (W005, W021).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    *(["security.W005"] if not SECURE_HSTS_INCLUDE_SUBDOMAINS else []),
    *(["security.W021"] if not SECURE_HSTS_PRELOAD else []),
]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_TLS_PROXY", False) else None
)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Dashboard (docs/dashboard.md) ---------------------------------------------------
# Every process publishes its request figures here, at most once per interval (seconds).
DASHBOARD_METRICS_DIR = Path(env.str("DASHBOARD_METRICS_DIR", str(VAR_DIR / "metrics")))
DASHBOARD_PUBLISH_INTERVAL = env.int("DASHBOARD_PUBLISH_INTERVAL", 2)
# Bearer token for /metrics (Prometheus); empty: only a staff session may read it.
DASHBOARD_METRICS_TOKEN = env.str("DASHBOARD_METRICS_TOKEN", "")
# Memory the daemons may use, for the advice panel (0: half of this machine's).
DASHBOARD_MEMORY_BUDGET_MIB = env.int("DASHBOARD_MEMORY_BUDGET_MIB", 0)
# PgBouncer's admin console (postgres://user:password@host:port/pgbouncer, a stats_users
# role): the dashboard then shows SHOW POOLS / SHOW STATS beside pg_stat_activity.
PGBOUNCER_URL = env.str("PGBOUNCER_URL", "")
# Other web hosts publishing into the same metrics directory (a shared volume); without
# them, a record naming another host is skipped as forged.
DASHBOARD_HOSTS = env.list("DASHBOARD_HOSTS", [])
# The account the daemons run as (deploy.sh's DAEMON_USER): a metrics directory created
# by root is handed to it.
DASHBOARD_DAEMON_USER = env.str("DJANGO_DAEMON_USER", "www-data")
# The request-counting middleware (first, so it times everything); DASHBOARD_METRICS=0
# drops it (the bench measures its cost that way).
if env.bool("DASHBOARD_METRICS", True):
    MIDDLEWARE.insert(0, "dashboard.middleware.RequestMetricsMiddleware")

# --- Development tools: only ever loaded with DEBUG on --------------------------------
if DEBUG:
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = env.list("DJANGO_INTERNAL_IPS", ["127.0.0.1", "::1"])
    from debug_toolbar.settings import PANELS_DEFAULTS

    # The default panels plus persistent_backend's (reused or new connection, its age,
    # uses and backend pid, and the process's pool statistics).
    DEBUG_TOOLBAR_PANELS = [*PANELS_DEFAULTS, "persistent_backend.panels.PersistentConnectionPanel"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": env.str("DJANGO_LOG_LEVEL", "WARNING")},
    "loggers": {
        "persistent_backend": {"level": env.str("PERSISTENT_LOG_LEVEL", "INFO")},
    },
}
