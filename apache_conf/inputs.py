"""What the command-line options stand for: the connection budget (the flags, else
PostgreSQL itself), the sized plans, the Site to render, the README's command lines and
the install Target. Shared by ``apache_conf``, ``pgbouncer_conf`` and ``bench.tune``.
"""

import shlex
import socket
import subprocess
import sys
from pathlib import Path

from apache_conf import debian, install, pgprobe, render
from apache_conf.options import INSTALL_INPUTS, SITE_INPUTS, SIZING_INPUTS
from apache_conf.sizing import (
    DEFAULT_SPARE,
    PG_DEFAULT_SUPERUSER_RESERVED,
    Budget,
    Machine,
    SizingError,
    plan,
)


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
            facts = pgprobe.probe(url, pgprobe.site_prefix())
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


def host_fqdn():
    """``hostname -f`` (what the operator sees), else Python's guess."""
    try:
        name = subprocess.run(
            ["hostname", "-f"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        name = ""
    return name or socket.getfqdn()


def site_from_options(options, **fixed):
    """The render.Site from the site flags; ``fixed`` values win over the flags."""
    site_root = Path(options.get("site_root") or render.REPO_DIR).resolve()
    values = {
        "server_name": options.get("server_name") or host_fqdn(),
        "site_root": site_root,
        "venv": Path(options.get("venv") or sys.prefix),
        **fixed,
    }
    for key in (*SITE_INPUTS, "tls_cert", "tls_key", "tls_port"):
        if key not in values and options.get(key) is not None:
            values[key] = options[key]
    return render.Site(**values)


def readme_commands(options, site):
    """The README's install, curl and uninstall lines: the given inputs, absolute paths."""
    head = f"cd {shlex.quote(str(site.site_root))} && {site.python} -m apache_conf"
    words = ["install", "--variant", "prefork"]
    skip = ("database_url", "processes", "threads", "force", "dry_run")
    for key in (*SIZING_INPUTS, *SITE_INPUTS, *INSTALL_INPUTS):
        value = options.get(key)
        if key in skip or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, shlex.quote(str(value))]
    if options.get("server_name") is None:
        words += ["--server-name", site.server_name]
    mode = (
        "http"
        if options.get("http_only")
        else "proxy"
        if options.get("behind_tls_proxy")
        else "tls"
    )
    if mode == "tls" and not options.get("tls_cert"):
        live = f"/etc/letsencrypt/live/{site.server_name}"
        words += ["--tls-cert", f"{live}/fullchain.pem", "--tls-key", f"{live}/privkey.pem"]
    return render.readme_commands(
        site,
        install=f"{head} {' '.join(words)}",
        uninstall=f"{head} uninstall"
        + "".join(
            f" --{key.replace('_', '-')} {shlex.quote(str(options[key]))}"
            for key in ("server_root", "state_dir", "name")
            if options.get(key)
        ),
        https=mode,
    )


# --- install / uninstall ---------------------------------------------------------------
def https_mode(opts):
    """ "tls", "proxy" or "http"; refuses none or several (HTTPS is on by default)."""
    chosen = [
        mode
        for mode, given in (
            ("tls", opts.get("tls_cert") or opts.get("tls_key")),
            ("proxy", opts.get("behind_tls_proxy")),
            ("http", opts.get("http_only")),
        )
        if given
    ]
    if len(chosen) > 1:
        raise SizingError("choose one of --tls-cert/--tls-key, --behind-tls-proxy, --http-only")
    if not chosen:
        raise SizingError(
            "HTTPS is on by default: pass --tls-cert FILE --tls-key FILE (e.g. from certbot "
            "certonly), or --behind-tls-proxy when a proxy in front terminates TLS, or "
            "--http-only (plain HTTP, not for production); see docs/production.md"
        )
    if chosen == ["tls"]:
        for key in ("tls_cert", "tls_key"):
            path = Path(opts.get(key) or "")
            if not opts.get(key) or not path.is_file():
                raise SizingError(f"--{key.replace('_', '-')} {str(path)!r}: no such file")
    return chosen[0]


def target_from_options(opts):
    """The install.Target for ``install``: HTTPS mode checked, static files
    and env file under VAR_DIR (refuses a --static-root elsewhere)."""
    name = opts.get("name") or "site"
    site_root = Path(opts.get("site_root") or render.REPO_DIR).resolve()
    var_dir = Path(opts.get("var_dir") or site_root / "var")
    if opts.get("static_root") and Path(opts["static_root"]) != var_dir / "static":
        raise SizingError("install serves VAR_DIR/static (settings' STATIC_ROOT): use --var-dir")
    https = https_mode(opts)
    site = site_from_options(
        opts,
        static_root=var_dir / "static",
        env_file=Path(opts.get("env_file") or var_dir / "production.env"),
    )
    return install.Target(
        root=debian.ServerRoot(Path(opts.get("server_root") or debian.SYSTEM_ROOT)),
        site=site,
        https=https,
        var_dir=var_dir,
        state_dir=Path(opts.get("state_dir") or install.STATE_ROOT / name),
        dry_run=bool(opts.get("dry_run")),
    )
