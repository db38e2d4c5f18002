"""Render the Apache configs and their README from the templates in ``templates/apache_conf``.

``render_template`` is the one way every module of this package renders a template: one
Django template engine, used standalone (no settings needed) with autoescape off: these
are config files, not HTML.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path

from django.template import Context, Engine

from apache_conf.sizing import Machine, Plan, plan

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
TEMPLATES = PACKAGE_DIR / "templates"
GENERATED_DIR = PACKAGE_DIR / "generated"
DEFAULT_OUT_DIR = REPO_DIR / "var" / "apache_conf"

#: Apache started as /usr/sbin/apache2 (what apache2ctl and systemd run): mod_wsgi writes
#: the display name over argv[0], so it is cut to this length.
ARGV0_LENGTH = len("/usr/sbin/apache2")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
UNSAFE_PATH_RE = re.compile(r"[\s'\"\\$]")

ENGINE = Engine(dirs=[str(TEMPLATES)], autoescape=False)


class RenderError(Exception):
    """An input the templates cannot express safely; ``str()`` is one line."""


@dataclass(frozen=True)
class Site:
    """Where the site lives and how Apache reaches it."""

    server_name: str
    site_root: Path
    venv: Path
    port: int = 80
    env_file: Path | None = None
    static_root: Path | None = None
    log_dir: Path = Path("/var/log/apache2")
    user: str = "www-data"
    group: str = "www-data"
    name: str = "site"
    locale: str = "C.UTF-8"
    maximum_requests: int = 0
    inactivity_timeout: int = 0
    #: Certificate and key for a second, TLS vhost on ``tls_port`` (none without them).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int = 443
    #: certbot's --webroot directory: its challenges are served on the plain-HTTP vhost.
    acme_webroot: Path = Path("/var/www/html")

    def __post_init__(self):
        for field in ("site_root", "venv", "log_dir", "acme_webroot"):
            object.__setattr__(self, field, Path(getattr(self, field)))
        if self.env_file is None:
            object.__setattr__(self, "env_file", self.site_root / "var" / "site.env")
        if self.static_root is None:
            object.__setattr__(self, "static_root", self.site_root / "var" / "static")
        for field in ("env_file", "static_root", "tls_cert", "tls_key"):
            if getattr(self, field) is not None:
                object.__setattr__(self, field, Path(getattr(self, field)))
        self.validate()

    def validate(self):
        """RenderError for a value the templates cannot express safely."""
        if not NAME_RE.match(self.name):
            raise RenderError(f"--name {self.name!r}: use letters, digits, '.', '_' or '-'")
        if len(self.display_name) > ARGV0_LENGTH:
            raise RenderError(
                f"--name {self.name!r} makes display-name {self.display_name!r}"
                f" ({len(self.display_name)} characters): ps shows only {ARGV0_LENGTH}"
                f" when Apache runs as /usr/sbin/apache2; use at most"
                f" {ARGV0_LENGTH - len('(wsgi:)')} characters"
            )
        for value, what in [
            (self.server_name, "--server-name"),
            (self.user, "--user"),
            (self.group, "--group"),
            (self.locale, "--locale"),
        ]:
            if not NAME_RE.match(value):
                raise RenderError(f"{what} {value!r}: use letters, digits, '.', '_' or '-'")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise RenderError("--tls-cert and --tls-key go together")
        for field in (
            "site_root",
            "venv",
            "acme_webroot",
            "env_file",
            "static_root",
            "log_dir",
            "tls_cert",
            "tls_key",
        ):
            path = getattr(self, field)
            if path is None:
                continue
            if not path.is_absolute() or UNSAFE_PATH_RE.search(str(path)):
                raise RenderError(
                    f"{field.replace('_', '-')} {str(path)!r}: an absolute path without"
                    " spaces, quotes, backslashes or '$' is needed"
                )
        for port, what in ((self.port, "--port"), (self.tls_port, "--tls-port")):
            if not 0 < port < 65536:
                raise RenderError(f"{what} {port}: use 1-65535")
        if self.tls_cert is not None and self.tls_port == self.port:
            raise RenderError(f"--tls-port {self.tls_port} is also --port: use two ports")
        if self.maximum_requests < 0 or self.inactivity_timeout < 0:
            raise RenderError("--maximum-requests and --inactivity-timeout must be >= 0")

    @property
    def display_name(self):
        """The daemons' argv[0] (``(wsgi:NAME)``), what ps and the dashboard show."""
        return f"(wsgi:{self.name})"

    @property
    def vhosts(self):
        """The plain-HTTP vhost, and the TLS one when a certificate is given."""
        found = [{"port": self.port, "tls": False}]
        if self.tls_cert is not None:
            found.append({"port": self.tls_port, "tls": True})
        return found

    @property
    def python(self):
        """The venv's interpreter: the one to run manage.py with (Debian has no ``python``)."""
        return self.venv / "bin" / "python"

    @property
    def manage(self):
        return self.site_dir / "manage.py"

    @property
    def site_dir(self):
        return self.site_root / "site"

    @property
    def wsgi_dir(self):
        return self.site_dir / "config"

    @property
    def wsgi_script(self):
        return self.wsgi_dir / "wsgi.py"


def render_template(template, context):
    """``template`` (a name under templates/) rendered with ``context``: trailing spaces
    dropped, runs of blank lines cut to one, one final newline."""
    text = ENGINE.get_template(template).render(Context(context, autoescape=False, use_l10n=False))
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def render_variant(result: Plan, site: Site, command: str, file_name=None) -> str:
    """One ``<variant>.conf`` (or ``file_name``, e.g. tune's ``tuned.conf``)."""
    threads = result.shape.threads
    return render_template(
        "apache_conf/site.conf",
        {
            "plan": result,
            "shape": result.shape,
            "frontend": result.frontend,
            "site": site,
            "command": command,
            "file_name": file_name or f"{result.shape.variant}.conf",
            "request_timeout_fire": round(60 * (1 + math.log(threads))),
        },
    )


def render_readme(plans, site: Site, command: str, commands: dict, reference=False) -> str:
    """The README beside the configs: what each file is, and how to install one."""
    rows = [
        {
            "file": f"{p.shape.variant}.conf",
            "daemons": f"{p.shape.processes} x {p.shape.threads}",
            "mode": p.shape.mode,
            "connections": f"{p.needed} of {p.budget.usable} usable",
        }
        for p in plans
    ]
    first = plans[0]
    return render_template(
        "apache_conf/README.txt",
        {
            "rows": rows,
            "site": site,
            "machine": first.machine,
            "budget": first.budget,
            "command": command,
            "reference": reference,
            **commands,
        },
    )


def readme_commands(site: Site, install: str, uninstall: str, https: str):
    """The README's command lines: install, the curl that checks it, uninstall."""
    port = site.tls_port if https == "tls" else site.port
    scheme = "https" if https == "tls" else "http"
    netloc = site.server_name if port in (80, 443) else f"{site.server_name}:{port}"
    flags = (
        "-k " if https == "tls" else "-H 'X-Forwarded-Proto: https' " if https == "proxy" else ""
    )
    curl = (
        f"curl -sS {flags}--resolve {site.server_name}:{port}:127.0.0.1 {scheme}://{netloc}/healthz"
    )
    return {"install": install, "curl": curl, "uninstall": uninstall}


def outputs(plans, site: Site, command: str, commands: dict, reference=False):
    """{file name: text} for the given plans and the README (``commands``: its command
    lines, from readme_commands)."""
    files = {f"{p.shape.variant}.conf": render_variant(p, site, command) for p in plans}
    files["README"] = render_readme(plans, site, command, commands, reference=reference)
    return files


def write(files, out_dir):
    """Write the files into ``out_dir`` (created if needed); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths


# --- the documented default machine, whose output is committed in generated/ --------------
REFERENCE_COMMAND = "/srv/site/.venv/bin/python /srv/site/site/manage.py apache_conf --reference"
REFERENCE_MACHINE = Machine(cores=4, memory_bytes=8 * 1024**3)
REFERENCE_SITE = dict(
    server_name="example.com",
    site_root=Path("/srv/site"),
    venv=Path("/srv/site/.venv"),
    port=80,
)
REFERENCE_INSTALL = (
    "cd /srv/site && /srv/site/.venv/bin/python -m apache_conf install --variant prefork"
    " --server-name example.com --tls-cert /etc/letsencrypt/live/example.com/fullchain.pem"
    " --tls-key /etc/letsencrypt/live/example.com/privkey.pem"
)


def reference_outputs():
    """What generated/ must hold: every variant for 4 cores, 8 GiB, max_connections 100."""
    from apache_conf.sizing import VARIANTS, Budget

    budget = Budget(max_connections=100, source="max_connections 100 (reference machine)")
    plans = [plan(variant, REFERENCE_MACHINE, budget) for variant in VARIANTS]
    site = Site(**REFERENCE_SITE)
    commands = readme_commands(
        site,
        install=REFERENCE_INSTALL,
        uninstall="cd /srv/site && /srv/site/.venv/bin/python -m apache_conf uninstall",
        https="tls",
    )
    return outputs(plans, site, REFERENCE_COMMAND, commands, reference=True)
