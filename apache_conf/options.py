"""The command-line options of ``apache_conf`` (generate, install, uninstall) and the
sizing flags that ``pgbouncer_conf`` shares."""

from apache_conf import install, render
from apache_conf.debian import SYSTEM_ROOT
from apache_conf.sizing import DEFAULT_SPARE, VARIANTS

SIZING_INPUTS = (
    "processes",
    "threads",
    "hosts",
    "cores",
    "memory_gib",
    "max_connections",
    "superuser_reserved",
    "others",
    "spare",
    "database_url",
    "force",
)
SITE_INPUTS = (
    "server_name",
    "port",
    "venv",
    "site_root",
    "env_file",
    "static_root",
    "log_dir",
    "user",
    "group",
    "name",
    "locale",
    "maximum_requests",
    "inactivity_timeout",
    "acme_webroot",
)


def add_sizing_arguments(parser):
    group = parser.add_argument_group(
        "sizing", "defaults: this machine (psutil) and the site's PostgreSQL (DATABASE_URL)"
    )
    group.add_argument("--processes", type=int, help="daemon processes (prefork, hybrid)")
    group.add_argument("--threads", type=int, help="threads per process (threaded, hybrid)")
    group.add_argument("--hosts", type=int, help="identical web hosts sharing PostgreSQL (1)")
    group.add_argument("--cores", type=int, help="CPU cores (default: this machine)")
    group.add_argument("--memory-gib", type=float, help="memory in GiB (default: this machine)")
    group.add_argument(
        "--max-connections", type=int, help="PostgreSQL max_connections (default: SHOW)"
    )
    group.add_argument(
        "--superuser-reserved",
        type=int,
        help="superuser_reserved_connections (default: SHOW, else 3)",
    )
    group.add_argument(
        "--others",
        type=int,
        help="connections used by others (default: pg_stat_activity, else 0)",
    )
    group.add_argument(
        "--spare",
        type=int,
        help=f"connections kept free for manage.py, cron, psql (default {DEFAULT_SPARE})",
    )
    group.add_argument("--database-url", help="default: DATABASE_URL, as settings.py reads it")
    group.add_argument(
        "--force", action="store_true", default=None, help="write even when over budget"
    )


def add_site_arguments(parser):
    group = parser.add_argument_group("site")
    group.add_argument("--server-name", help="ServerName (default: this host's FQDN)")
    group.add_argument("--port", type=int, help="the <VirtualHost *:PORT> (default 80)")
    group.add_argument("--venv", help="python-home (default: this Python's sys.prefix)")
    group.add_argument("--site-root", help="the repository (default: this one)")
    group.add_argument(
        "--env-file",
        help="settings env file (default SITE_ROOT/var/site.env; install: VAR_DIR/production.env)",
    )
    group.add_argument("--static-root", help="STATIC_ROOT (default SITE_ROOT/var/static)")
    group.add_argument("--log-dir", help="ErrorLog/CustomLog directory (/var/log/apache2)")
    group.add_argument("--user", help="daemon user (www-data)")
    group.add_argument("--group", help="daemon group (www-data)")
    group.add_argument("--name", help="daemon process group, at most 10 characters (site)")
    group.add_argument("--locale", help="daemon lang/locale (C.UTF-8)")
    group.add_argument(
        "--maximum-requests", type=int, help="recycle a daemon after N requests (off)"
    )
    group.add_argument(
        "--inactivity-timeout", type=int, help="recycle a daemon idle for N seconds (off)"
    )
    group.add_argument(
        "--acme-webroot",
        help="certbot --webroot directory, served at /.well-known/acme-challenge/ over HTTP"
        " (default /var/www/html)",
    )


INSTALL_INPUTS = (
    "server_root",
    "state_dir",
    "var_dir",
    "tls_cert",
    "tls_key",
    "tls_port",
    "behind_tls_proxy",
    "http_only",
)
ACTIONS = ("install", "uninstall")


def add_install_arguments(parser):
    group = parser.add_argument_group(
        "install", "install/uninstall into Debian's system Apache (docs/production.md)"
    )
    group.add_argument("--server-root", help=f"Apache's ServerRoot (default {SYSTEM_ROOT})")
    group.add_argument(
        "--state-dir",
        help=f"the install's journal, for uninstall (default {install.STATE_ROOT}/NAME)",
    )
    group.add_argument(
        "--var-dir", help="static files, metrics, production.env (default SITE_ROOT/var)"
    )
    group.add_argument("--tls-cert", help="certificate (chain) file: adds the TLS vhost")
    group.add_argument("--tls-key", help="its private key file")
    group.add_argument("--tls-port", type=int, help="the TLS vhost's port (default 443)")
    group.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        default=None,
        help="a proxy in front terminates TLS and sends X-Forwarded-Proto",
    )
    group.add_argument(
        "--http-only",
        action="store_true",
        default=None,
        help="plain HTTP, HTTPS off (not for production: cookies travel in clear)",
    )
    group.add_argument(
        "--dry-run", action="store_true", help="print every change instead of making it"
    )


def add_arguments(parser):
    """All options of ``manage.py apache_conf`` and ``python -m apache_conf``."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=ACTIONS,
        help="install or uninstall one variant on the system Apache (default: write configs)",
    )
    parser.add_argument(
        "--variant",
        choices=[*VARIANTS, "all"],
        default="all",
        help="which config to write (default: all three)",
    )
    parser.add_argument(
        "--out",
        help=f"output directory (default {render.DEFAULT_OUT_DIR}; "
        f"with --reference {render.GENERATED_DIR})",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="write the documented default machine's configs (apache_conf/generated/)",
    )
    parser.add_argument(
        "--tune",
        nargs="?",
        const="newest",
        metavar="RUN",
        help="write tuned.conf and tuned.env for the shape a ./deploy.sh tune run chose "
        "(RUN: its folder or result.json; default the newest under var/tune)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate each written config with the real apache2ctl -t",
    )
    add_sizing_arguments(parser)
    add_site_arguments(parser)
    add_install_arguments(parser)
