"""Command-line options and the generator run, shared by ``manage.py apache_conf`` and
``python -m apache_conf.sizing``.

Exit codes: 0 written; 2 refused (over budget, PostgreSQL unreachable without
--max-connections, or an input the templates cannot express); 1 ``--check`` failed.
"""

import socket
import sys
import tempfile
from pathlib import Path

from apache_conf import pgprobe, render
from apache_conf.sizing import (
    DEFAULT_SPARE,
    PG_DEFAULT_SUPERUSER_RESERVED,
    VARIANTS,
    Budget,
    Machine,
    SizingError,
    plan,
)

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
    group.add_argument("--env-file", help="settings env file (default SITE_ROOT/var/site.env)")
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


def add_arguments(parser):
    """All options of ``manage.py apache_conf``."""
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


# --- sizing ------------------------------------------------------------------------------
def resolve_budget(options, err):
    """The Budget from flags and, for what they leave out, from PostgreSQL itself."""
    given = {key: options.get(key) for key in ("max_connections", "superuser_reserved", "others")}
    spare = DEFAULT_SPARE if options.get("spare") is None else options["spare"]
    if all(value is not None for value in given.values()):
        return Budget(
            **given, spare=spare, source=f"max_connections {given['max_connections']} (given)"
        )
    url = pgprobe.site_database_url(options.get("database_url"))
    facts = None
    if url is None:
        reason = "no DATABASE_URL (environment, DJANGO_ENV_FILE or var/site.env)"
    else:
        try:
            facts = pgprobe.probe(url)
        except pgprobe.Unreachable as exc:
            reason = str(exc)
    if facts is None:
        if given["max_connections"] is None:
            raise SizingError(
                f"{reason}: pass --max-connections N (PostgreSQL's max_connections, and "
                "--superuser-reserved/--others if not 3/0) or make DATABASE_URL reachable"
            )
        err.write(f"apache_conf: {reason}; using --max-connections {given['max_connections']}\n")
        return Budget(
            max_connections=given["max_connections"],
            superuser_reserved=PG_DEFAULT_SUPERUSER_RESERVED
            if given["superuser_reserved"] is None
            else given["superuser_reserved"],
            others=0 if given["others"] is None else given["others"],
            spare=spare,
            source=f"max_connections {given['max_connections']} (given; server unreachable)",
        )
    overridden = [f"--{key.replace('_', '-')} {v}" for key, v in given.items() if v is not None]
    return Budget(
        max_connections=facts.max_connections
        if given["max_connections"] is None
        else given["max_connections"],
        superuser_reserved=facts.superuser_reserved
        if given["superuser_reserved"] is None
        else given["superuser_reserved"],
        reserved=facts.reserved,
        others=facts.others if given["others"] is None else given["others"],
        spare=spare,
        source=facts.where + (f" with {', '.join(overridden)}" if overridden else ""),
        role_limit=facts.role_limit,
        role_others=facts.role_others,
        database_limit=facts.database_limit,
        database_others=facts.database_others,
    )


def size_variants(options, variants, err):
    """Plans for ``variants``; raises SizingError on the first refusal."""
    machine = Machine.detect(options.get("cores"), options.get("memory_gib"))
    budget = resolve_budget(options, err)
    hosts = 1 if options.get("hosts") is None else options["hosts"]
    plans = []
    for variant in variants:
        processes, threads = options.get("processes"), options.get("threads")
        if len(variants) > 1:
            # With every variant, each flag applies where it means something.
            processes = None if variant == "threaded" else processes
            threads = None if variant == "prefork" else threads
        plans.append(
            plan(
                variant,
                machine,
                budget,
                hosts=hosts,
                processes=processes,
                threads=threads,
                force=bool(options.get("force")),
            )
        )
    return plans


def site_from_options(options):
    site_root = Path(options.get("site_root") or render.REPO_DIR).resolve()
    values = {
        "server_name": options.get("server_name") or socket.getfqdn(),
        "site_root": site_root,
        "venv": Path(options.get("venv") or sys.prefix),
    }
    for key in SITE_INPUTS:
        if key not in values and options.get(key) is not None:
            values[key] = options[key]
    return render.Site(**values)


# --- the generator -----------------------------------------------------------------------
def run(options, out, err, command):
    """Size, render and write; return the exit code (messages already written)."""
    try:
        if options.get("tune"):
            return run_tuned(options, out, err, command)
        if options.get("reference"):
            extra = [
                "--" + key.replace("_", "-")
                for key in (*SIZING_INPUTS, *SITE_INPUTS)
                if options.get(key) is not None
            ]
            if extra or options.get("variant") not in (None, "all"):
                raise SizingError(
                    "--reference takes fixed inputs; drop " + (", ".join(extra) or "--variant")
                )
            files = render.reference_outputs()
            out_dir = Path(options.get("out") or render.GENERATED_DIR)
            plans = []
        else:
            variant = options.get("variant") or "all"
            variants = list(VARIANTS) if variant == "all" else [variant]
            plans = size_variants(options, variants, err)
            files = render.outputs(plans, site_from_options(options), command)
            out_dir = Path(options.get("out") or render.DEFAULT_OUT_DIR)
    except (SizingError, render.RenderError) as exc:
        err.write(f"apache_conf: {exc}\n")
        for line in getattr(exc, "details", ()):
            err.write(line + "\n")
        return 2
    for result in plans:
        if result.note:
            err.write(f"apache_conf: {result.shape.variant}: {result.note}\n")
    paths = render.write(files, out_dir)
    by_variant = {f"{p.shape.variant}.conf": p for p in plans}
    for path in paths:
        result = by_variant.get(path.name)
        if result is None:
            out.write(f"wrote {path}\n")
        else:
            s = result.shape
            out.write(
                f"wrote {path}: {s.processes} x {s.threads}, PERSISTENT_MODE={s.mode}, "
                f"{result.needed} of {result.budget.usable} usable PostgreSQL connections\n"
            )
    if options.get("check"):
        return check(paths, out, err)
    return 0


def run_tuned(options, out, err, command):
    """``--tune``: render the chosen shape of a tune run, sized as that run measured it."""
    from apache_conf import tune, tuned

    extra = ["--" + key.replace("_", "-") for key in SIZING_INPUTS if options.get(key) is not None]
    if extra or options.get("reference") or options.get("variant") not in (None, "all"):
        raise SizingError(
            "--tune takes the shape and budget from the run: drop "
            + (", ".join(extra) or "--variant/--reference")
        )
    try:
        source = tuned.latest_run() if options["tune"] == "newest" else options["tune"]
        files = tuned.tuned_outputs(tuned.load_result(source), site_from_options(options), command)
    except tune.TuneError as exc:
        raise SizingError(str(exc)) from None
    paths = render.write(files, Path(options.get("out") or render.DEFAULT_OUT_DIR))
    for path in paths:
        out.write(f"wrote {path}\n")
    if options.get("check"):
        return check(paths, out, err)
    return 0


def check(paths, out, err):
    """Run the real ``apache2ctl -t`` on each config inside a throwaway httpd.conf."""
    from apache_conf.apachectl import StandaloneApache

    failed = 0
    for path in paths:
        if path.suffix != ".conf":
            continue
        with tempfile.TemporaryDirectory(prefix="apache-conf-check-") as root:
            result = StandaloneApache(root, path).config_test()
        if result.returncode == 0:
            out.write(f"apache2ctl -t {path.name}: Syntax OK\n")
        else:
            failed += 1
            err.write(f"apache2ctl -t {path.name} failed:\n{result.stdout}{result.stderr}\n")
    return 1 if failed else 0
