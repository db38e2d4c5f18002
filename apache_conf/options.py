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


def add_flags(group, *flags):
    """Add each ``(flag, type or None, help)``: a plain valued option, None when not given.

    Each group's flags stay a table of its own (alike in shape, different data).
    """
    for flag, kind, text in flags:
        group.add_argument(flag, type=kind, help=text)


def add_sizing_arguments(parser):
    """The sizing flags (shape, machine, connection budget), shared with pgbouncer_conf."""
    group = parser.add_argument_group(
        "sizing", "defaults: this machine (psutil) and the site's PostgreSQL (DATABASE_URL)"
    )
    add_flags(
        group,
        ("--processes", int, "daemon processes (prefork, hybrid)"),
        ("--threads", int, "threads per process (threaded, hybrid)"),
        ("--hosts", int, "identical web hosts sharing PostgreSQL (1)"),
        ("--cores", int, "CPU cores (default: this machine)"),
        ("--memory-gib", float, "memory in GiB (default: this machine)"),
        ("--max-connections", int, "PostgreSQL max_connections (default: SHOW)"),
        ("--superuser-reserved", int, "superuser_reserved_connections (default: SHOW, else 3)"),
        ("--others", int, "connections used by others (default: pg_stat_activity, else 0)"),
        (
            "--spare",
            int,
            f"connections kept free for manage.py, cron, psql (default {DEFAULT_SPARE})",
        ),
        ("--database-url", None, "default: DATABASE_URL, as settings.py reads it"),
    )
    group.add_argument(
        "--force", action="store_true", default=None, help="write even when over budget"
    )


def add_site_arguments(parser):
    """The flags of what the config serves: names, paths, daemon user and recycling."""
    group = parser.add_argument_group("site")
    add_flags(
        group,
        ("--server-name", None, "ServerName (default: this host's FQDN)"),
        ("--port", int, "the <VirtualHost *:PORT> (default 80)"),
        ("--venv", None, "python-home (default: this Python's sys.prefix)"),
        ("--site-root", None, "the repository (default: this one)"),
        (
            "--env-file",
            None,
            "settings env file (default SITE_ROOT/var/site.env; install: VAR_DIR/production.env)",
        ),
        ("--static-root", None, "STATIC_ROOT (default SITE_ROOT/var/static)"),
        ("--log-dir", None, "ErrorLog/CustomLog directory (/var/log/apache2)"),
        ("--user", None, "daemon user (www-data)"),
        ("--group", None, "daemon group (www-data)"),
        ("--name", None, "daemon process group, at most 10 characters (site)"),
        ("--locale", None, "daemon lang/locale (C.UTF-8)"),
        ("--maximum-requests", int, "recycle a daemon after N requests (off)"),
        ("--inactivity-timeout", int, "recycle a daemon idle for N seconds (off)"),
        (
            "--acme-webroot",
            None,
            "certbot --webroot directory, served at /.well-known/acme-challenge/ over HTTP"
            " (default /var/www/html)",
        ),
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
    """The flags of install/uninstall: where, TLS or not, dry run."""
    group = parser.add_argument_group(
        "install", "install/uninstall into Debian's system Apache (docs/production.md)"
    )
    add_flags(
        group,
        ("--server-root", None, f"Apache's ServerRoot (default {SYSTEM_ROOT})"),
        (
            "--state-dir",
            None,
            f"the install's journal, for uninstall (default {install.STATE_ROOT}/NAME)",
        ),
        ("--var-dir", None, "static files, metrics, production.env (default SITE_ROOT/var)"),
        ("--tls-cert", None, "certificate (chain) file: adds the TLS vhost"),
        ("--tls-key", None, "its private key file"),
        ("--tls-port", int, "the TLS vhost's port (default 443)"),
    )
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
