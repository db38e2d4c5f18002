"""The ``pgbouncer_conf`` command: flags to a sized plan, rendered and written.

The sizing and the files are in :mod:`apache_conf.pgbouncer`; this module only reads the
options (the same sizing flags as ``apache_conf``, from :mod:`apache_conf.options`).
"""

from dataclasses import replace
from pathlib import Path

from apache_conf import cli, inputs, pgprobe, render
from apache_conf.options import SIZING_INPUTS, add_flags, add_sizing_arguments
from apache_conf.pgbouncer import (
    DEFAULT_OUT_DIR,
    DEFAULT_VARIANT,
    INI,
    Lifetimes,
    Setup,
    outputs,
    reference_outputs,
    reference_plan,
    size,
    write,
)
from apache_conf.sizing import VARIANTS, Machine, SizingError, requested_shape

SETUP_FLAGS = {
    "listen_addr": "listen_addr",
    "listen_port": "listen_port",
    "unix_socket_dir": "unix_socket_dir",
    "db_host": "db_host",
    "db_port": "db_port",
    "db_name": "db_name",
    "stats_user": "stats_user",
    "auth_file": "auth_file",
    "logfile": "logfile",
    "pidfile": "pidfile",
}
POOL_FLAGS = ("pool_size", "reserve_pool_size", "db_cores", "max_age", "idle_timeout")


def add_arguments(parser):
    """All options of ``manage.py pgbouncer_conf`` and ``python -m apache_conf.pgbouncer_conf``."""
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default=None,
        help=f"the web hosts' daemon shape (default {DEFAULT_VARIANT})",
    )
    parser.add_argument("--out", help=f"output directory (default {DEFAULT_OUT_DIR})")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="write the documented reference (apache_conf/generated/)",
    )
    add_sizing_arguments(parser)
    pool = parser.add_argument_group("pool", "defaults: derived (see the ini's header)")
    add_flags(
        pool,
        ("--db-cores", int, "PostgreSQL host's cores (default: --cores)"),
        ("--pool-size", int, "default_pool_size (default: derived)"),
        ("--reserve-pool-size", int, "reserve_pool_size (derived)"),
        ("--max-age", float, "server_lifetime (default: the site's max_age)"),
        ("--idle-timeout", float, "server_idle_timeout (default: the site's idle_timeout)"),
    )
    where = parser.add_argument_group("pgbouncer", "where it listens, what it reaches, its files")
    add_flags(
        where,
        ("--listen-addr", None, "listen_addr (default '*': firewall it)"),
        ("--listen-port", int, "listen_port (default 6432)"),
        ("--unix-socket-dir", None, "unix_socket_dir ('' for none)"),
        ("--db-host", None, "PostgreSQL host or socket dir (default: DATABASE_URL)"),
        ("--db-port", int, "PostgreSQL port (default: DATABASE_URL)"),
        ("--db-name", None, "database (default: DATABASE_URL's)"),
        ("--stats-user", None, "stats_users role (default: DATABASE_URL's user)"),
        ("--auth-file", None, "auth_file (default /etc/pgbouncer/userlist.txt)"),
        ("--logfile", None, "logfile (default /var/log/postgresql/pgbouncer.log)"),
        ("--pidfile", None, "pidfile (default /var/run/postgresql/pgbouncer.pid)"),
    )


def setup_from_options(options):
    """The Setup from flags, with the site's DATABASE_URL for what they leave out."""
    values = {}
    url = pgprobe.site_database_url(options.get("database_url"))
    if url:
        import dj_database_url

        parsed = dj_database_url.parse(url)
        for key, name in (("HOST", "db_host"), ("PORT", "db_port"), ("NAME", "db_name")):
            if parsed.get(key):
                values[name] = int(parsed[key]) if name == "db_port" else parsed[key]
        if parsed.get("USER"):
            values["stats_user"] = parsed["USER"]
    for key, name in SETUP_FLAGS.items():
        if options.get(key) is not None:
            values[name] = options[key]
    return Setup(**values)


def lifetimes_from_options(options):
    """The site's lifetimes, with --max-age/--idle-timeout over them."""
    lifetimes = Lifetimes.from_site_settings()
    for key in ("max_age", "idle_timeout"):
        if options.get(key) is not None:
            lifetimes = replace(lifetimes, **{key: options[key]}, source="given")
    return lifetimes


def plan_from_options(options, err):
    """The sized PoolPlan from the flags (budget from PostgreSQL if not given)."""
    machine = Machine.detect(options.get("cores"), options.get("memory_gib"))
    budget = inputs.resolve_budget(options, err)
    shape, _ = requested_shape(
        options.get("variant") or DEFAULT_VARIANT,
        machine,
        options.get("processes"),
        options.get("threads"),
    )
    return size(
        shape,
        machine,
        budget,
        hosts=options.get("hosts") or 1,
        db_cores=options.get("db_cores"),
        pool_size=options.get("pool_size"),
        reserve_pool_size=options.get("reserve_pool_size"),
        lifetimes=lifetimes_from_options(options),
        force=bool(options.get("force")),
    )


def run(options, out, err, command):
    """Size, render and write; return the exit code (2: refused, as apache_conf)."""
    try:
        if options.get("reference"):
            extra = [
                "--" + key.replace("_", "-")
                for key in (*SIZING_INPUTS, *SETUP_FLAGS, *POOL_FLAGS, "variant")
                if options.get(key) is not None
            ]
            if extra:
                raise SizingError("--reference takes fixed inputs; drop " + ", ".join(extra))
            files = reference_outputs()
            out_dir = Path(options.get("out") or render.GENERATED_DIR)
            result = reference_plan()
        else:
            result = plan_from_options(options, err)
            files = outputs(result, setup_from_options(options), command)
            out_dir = Path(options.get("out") or DEFAULT_OUT_DIR)
    except (SizingError, render.RenderError) as exc:
        return cli.refuse(err, "pgbouncer_conf", exc)
    for note in result.notes:
        err.write(f"pgbouncer_conf: {note}\n")
    for path in write(files, out_dir, out):
        if path.name == INI:
            out.write(
                f"wrote {path}: {result.clients} client connections"
                f" ({result.hosts} x {result.clients_per_host}) onto at most {result.servers}"
                f" PostgreSQL connections (pool {result.pool_size}"
                f" + reserve {result.reserve_pool_size}) of {result.budget.usable} usable\n"
            )
        else:
            out.write(f"wrote {path}\n")
    return 0


def command_line(argv):
    """How the files were made, with absolute paths and this venv's interpreter."""
    return cli.command_line(argv, tool="pgbouncer_conf")
