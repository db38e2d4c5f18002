"""Command-line options and runs, shared by ``manage.py apache_conf`` and
``python -m apache_conf`` (which needs no Django settings: a fresh host has none yet).

    [install|uninstall] [options]   generate the configs, or install/uninstall one
    shape --variant V               one shell line for deploy.sh (PROCESSES=.. THREADS=..)

Exit codes: 0 done; 2 refused or stopped (over budget, PostgreSQL unreachable without
--max-connections, an input the templates cannot express, a system that needs fixing
first, or an install step that failed: its changes are undone); 1 ``--check`` or the
install's self-check failed.

What the options stand for (budget, plans, Site, install Target) is in
:mod:`apache_conf.inputs`; the options themselves in :mod:`apache_conf.options`.
"""

import argparse
import re
import shlex
import sys
from pathlib import Path

from apache_conf import configtest, debian, install, pgprobe, render
from apache_conf.envfile import EnvFileError
from apache_conf.inputs import (
    readme_commands,
    site_from_options,
    size_variants,
    target_from_options,
)
from apache_conf.options import (  # add_arguments: the management command's options
    SITE_INPUTS,
    SIZING_INPUTS,
    add_arguments,
    add_sizing_arguments,
)
from apache_conf.sizing import VARIANTS, SizingError

#: The password of a database URL (in --database-url or --database-url=URL).
PASSWORD_RE = re.compile(r"^((?:--database-url=)?[a-z0-9+]+://[^:@/]*:)[^@]*@")


def refuse(err, prog, exc):
    """The one way a refusal is printed: ``prog: reason`` and its detail lines; exit 2."""
    err.write(f"{prog}: {exc}\n")
    for line in getattr(exc, "details", ()):
        err.write(line + "\n")
    return 2


def redact(argv):
    """``argv`` with the password of a ``--database-url`` hidden (it goes into headers)."""
    words, hide = [], False
    for word in argv:
        if hide or word.startswith("--database-url="):
            word = PASSWORD_RE.sub(r"\1********@", word)
        hide = word == "--database-url"
        words.append(word)
    return words


def command_line(argv, manage=True, tool="apache_conf"):
    """How the files were made, with absolute paths and this venv's interpreter."""
    if manage:
        head = [sys.executable, str(render.REPO_DIR / "site" / "manage.py"), tool]
    else:
        head = [sys.executable, "-m", tool]
    return shlex.join([*head, *redact(argv)])


# --- the generator -----------------------------------------------------------------------
def run(options, out, err, command):
    """Generate, install or uninstall; return the exit code (messages already written)."""
    if options.get("action"):
        return run_install(options, out, err, command)
    return run_generator(options, out, err, command)


def run_generator(options, out, err, command):
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
            site = site_from_options(options)
            files = render.outputs(plans, site, command, readme_commands(options, site))
            out_dir = Path(options.get("out") or render.DEFAULT_OUT_DIR)
    except (SizingError, render.RenderError) as exc:
        return refuse(err, "apache_conf", exc)
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
        return configtest.check(paths, out, err, options.get("server_root"), options.get("venv"))
    return 0


# --- install / uninstall -----------------------------------------------------------------
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
        return configtest.check(paths, out, err, options.get("server_root"), options.get("venv"))
    return 0


def run_install(opts, out, err, command):
    """``install`` or ``uninstall``; return the exit code."""
    try:
        if opts["action"] == "uninstall":
            name = opts.get("name") or "site"
            target = install.Target(
                root=debian.ServerRoot(Path(opts.get("server_root") or debian.SYSTEM_ROOT)),
                state_dir=Path(opts.get("state_dir") or install.STATE_ROOT / name),
                dry_run=bool(opts.get("dry_run")),
            )
            return install.Installer(target, out, err).uninstall()
        if opts.get("variant") in (None, "all"):
            raise SizingError("install one variant: --variant prefork, threaded or hybrid")
        target = target_from_options(opts)
        current = install.envfile.read(target.site.env_file)
        url = opts.get("database_url") or current.get("DATABASE_URL")
        url = pgprobe.site_database_url(url)
        if not url:
            raise SizingError(
                "no DATABASE_URL: pass --database-url URL, export DATABASE_URL, or put it in "
                f"{target.site.env_file}"
            )
        result = size_variants({**opts, "database_url": url}, [opts["variant"]], err)[0]
        if result.note:
            err.write(f"apache_conf: {result.shape.variant}: {result.note}\n")
        return install.Installer(target, out, err).install(result, url, command)
    except (SizingError, render.RenderError, EnvFileError, debian.InstallError) as exc:
        return refuse(err, "apache_conf", exc)


# --- python -m apache_conf -----------------------------------------------------------------
def shape_main(argv, out, err):
    """``shape --variant V``: one shell-evaluable line for deploy.sh's mod_wsgi-express run."""
    parser = argparse.ArgumentParser(
        prog="python -m apache_conf shape",
        description="Print the daemon shape for one variant (for deploy.sh / mod_wsgi-express):"
        " PROCESSES=.. THREADS=.. PERSISTENT_MODE=..",
    )
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    add_sizing_arguments(parser)
    opts = vars(parser.parse_args(argv))
    try:
        result = size_variants(opts, [opts["variant"]], err)[0]
    except SizingError as exc:
        return refuse(err, "apache_conf shape", exc)
    if result.note:
        err.write(f"apache_conf shape: {result.note}\n")
    out.write(result.shape.shell() + "\n")
    return 0


def main(argv=None, out=sys.stdout, err=sys.stderr):
    """``python -m apache_conf [install|uninstall] [options]`` or ``... shape --variant V``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["shape"]:
        return shape_main(argv[1:], out, err)
    parser = argparse.ArgumentParser(
        prog="python -m apache_conf",
        description="Write the Apache/mod_wsgi configs sized for this machine and PostgreSQL, "
        "or install/uninstall one on the system Apache. 'shape --variant V' prints one "
        "variant's daemon shape for deploy.sh.",
    )
    add_arguments(parser)
    opts = vars(parser.parse_args(argv))
    return run(opts, out, err, command_line(argv, manage=False))
