"""``apache_conf install`` / ``uninstall``: the site on a Debian/Ubuntu system Apache.

Install, idempotently: refuse if Debian's own mod_wsgi is enabled; load the venv's
mod_wsgi; enable mpm_event and the modules the site needs; write and enable the site
config (plain HTTP, plus a TLS vhost when a certificate is given); add missing ``Listen``
lines; write the production env file; collectstatic; ``apache2ctl -t`` on the whole
system config; a full restart; a self-check of ``/healthz`` through the ServerName.
Every file it changes is journaled (:class:`apache_conf.debian.Changes`): uninstall puts
each one back as it was, and a failed configtest undoes the run's changes.
"""

import http.client
import os
import pwd
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from apache_conf import envfile, render
from apache_conf.debian import (
    CLEAN_ENV,
    OTHER_MPMS,
    Changes,
    InstallError,
    ServerRoot,
    module_config,
)

#: Debian's mod_wsgi (libapache2-mod-wsgi-py3) embeds /usr/bin/python3, not the venv's.
DEBIAN_WSGI = "wsgi"
WSGI_MODULE = "wsgi_express"
MODULES = ("mpm_event", "authz_core", "alias", "env", "mime", WSGI_MODULE)
TLS_MODULES = ("setenvif", "socache_shmcb", "ssl")
DEFAULT_SITE = "000-default"
SELF_CHECK_TIMEOUT = 90
#: Where the journal lives by default (outside the ServerRoot, which it restores).
STATE_ROOT = Path("/var/lib/apache_conf")


@dataclass
class Target:
    """Everything install acts on, besides the plan (uninstall needs only the first two)."""

    root: ServerRoot
    state_dir: Path
    site: render.Site | None = None
    https: str = ""  # "tls", "proxy" or "http" (envfile.HTTPS_MODES)
    var_dir: Path | None = None
    dry_run: bool = False

    @property
    def ctl_prefix(self):
        """How to run Debian's tools for this root (APACHE_CONFDIR unless the system's)."""
        return "" if self.root.is_system else f"APACHE_CONFDIR={self.root.path} "


class Installer:
    """Runs one install or uninstall on ``target``; every change goes through the
    journal (Changes), so a failed step undoes the run and uninstall reverts it."""

    def __init__(self, target, out, err):
        self.t = target
        self.out = out
        self.err = err
        self.changes = Changes(target.state_dir, out, target.dry_run)

    # --- install ----------------------------------------------------------------------
    def install(self, plan, database_url, command):
        """Load the venv's mod_wsgi, write the site and env file, collectstatic, configtest,
        restart (a failure in these undoes the run), then self-check. Exit code."""
        t = self.t
        t.root.check()
        self.refuse_debian_wsgi()
        self.out.write(f"{'dry run: ' if t.dry_run else ''}installing into {t.root.path}\n")
        try:
            self.load_modules()
            self.write_site(plan, command)
            self.write_env(plan, database_url)
            self.prepare_var_dir()
            if t.dry_run:
                self.out.write(
                    "would run: collectstatic, apache2ctl -t, a full restart, GET /healthz\n"
                )
                return 0
            self.collectstatic()
            self.config_test()
            if self.changes.made or t.root.running_pid() is None:
                self.restart()
            else:
                self.out.write("no change: Apache keeps running as it is\n")
        except BaseException:
            self.changes.rollback()  # nothing half-done stays (a no-op in a dry run)
            raise
        return self.self_check()

    def refuse_debian_wsgi(self):
        """Debian's mod_wsgi runs the system Python: refuse with the command to fix it."""
        if self.t.root.is_enabled("mods", DEBIAN_WSGI, "load"):
            raise InstallError(
                "Debian's mod_wsgi (libapache2-mod-wsgi-py3) is enabled: it runs "
                "/usr/bin/python3, not this venv's; run "
                f"'{self.t.ctl_prefix}a2dismod {DEBIAN_WSGI}' (or apt-get remove "
                "libapache2-mod-wsgi-py3) and rerun"
            )

    def load_modules(self):
        """The venv's mod_wsgi as a Debian module (wsgi_express.load), the event MPM
        only, and the modules the site config needs, enabled."""
        t, changes = self.t, self.changes
        lines = module_config(t.site.venv)
        changes.write(
            t.root.available("mods", WSGI_MODULE, "load"),
            f"# mod_wsgi built by pip for {t.site.venv} (mod_wsgi-express module-config)\n"
            f"{lines}\n",
        )
        for mpm in OTHER_MPMS:
            t.root.disable(changes, "mods", mpm, ("load", "conf"))
        modules = MODULES + (TLS_MODULES if t.site.tls_cert else ())
        for module in modules:
            if module == WSGI_MODULE:  # written above (not yet in a dry run)
                changes.link(
                    t.root.enabled("mods", module, "load"), f"../mods-available/{module}.load"
                )
                continue
            if not t.root.available("mods", module, "load").exists():
                raise InstallError(
                    f"{t.root.available('mods', module, 'load')} is missing: "
                    "apt-get install --no-upgrade apache2"
                )
            t.root.enable(changes, "mods", module, ("load", "conf"))

    def write_site(self, plan, command):
        """The variant's site config, enabled; Debian's default site disabled; Listen lines
        added to ports.conf where missing."""
        t, changes = self.t, self.changes
        text = render.render_variant(plan, t.site, command)
        changes.write(t.root.available("sites", t.site.name, "conf"), text)
        changes.link(
            t.root.enabled("sites", t.site.name, "conf"), f"../sites-available/{t.site.name}.conf"
        )
        # The site answers every name on its port (loopback probes included), not Debian's page.
        t.root.disable(changes, "sites", DEFAULT_SITE, ("conf",))
        missing = [f"Listen {t.site.port}"] if not t.root.listens(t.site.port) else []
        if t.site.tls_cert and not t.root.listens(t.site.tls_port):
            missing.append(f"Listen {t.site.tls_port} https")
        if missing:
            ports = t.root.path / "ports.conf"
            text = ports.read_text() if ports.is_file() else ""
            text += f"\n# Added by apache_conf install for {t.site.name}\n" + "\n".join(missing)
            changes.write(ports, text + "\n")

    def write_env(self, plan, database_url):
        """The production env file (mode 0640, group of the daemon): the
        values the install owns, a secret key kept across runs."""
        t = self.t
        path = t.site.env_file
        current = envfile.read(path)
        values = envfile.Wanted(
            database_url=database_url,
            server_name=t.site.server_name,
            https=t.https,
            persistent_mode=plan.shape.mode,
            var_dir=t.var_dir,
        ).values(current)
        text = envfile.render(path.read_text() if path.is_file() else "", values)
        self.changes.write(
            path, text, mode=0o640, owner="root", group=t.site.group, shown=envfile.masked
        )

    def prepare_var_dir(self):
        """The var directory: static files (collectstatic) and the dashboard's metrics."""
        t = self.t
        metrics = t.var_dir / "metrics"
        if t.dry_run:
            if not metrics.is_dir():
                self.out.write(f"would create {metrics} (owner {t.site.user}, mode 0775)\n")
            return
        t.var_dir.mkdir(parents=True, exist_ok=True)
        metrics.mkdir(exist_ok=True)
        os.chmod(metrics, 0o775)
        os.chown(metrics, pwd.getpwnam(t.site.user).pw_uid, -1)

    def collectstatic(self):
        """``manage.py collectstatic`` with the production env file."""
        site = self.t.site
        self.out.write(f"{site.python} {site.manage} collectstatic --noinput\n")
        result = subprocess.run(
            [str(site.python), str(site.manage), "collectstatic", "--noinput", "-v0"],
            cwd=site.site_root,
            env={**CLEAN_ENV, "DJANGO_ENV_FILE": str(site.env_file)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise InstallError(f"collectstatic failed ({tail}); nothing was installed")

    def config_test(self):
        """``apache2ctl -t``; InstallError (the run is undone) when it fails."""
        result = self.t.root.config_test()
        if result.returncode:
            self.err.write(result.stdout + result.stderr)
            raise InstallError(
                f"{self.t.ctl_prefix}apache2ctl -t failed (above): this run's changes were "
                "undone; fix the cause and rerun"
            )
        self.out.write(f"{self.t.ctl_prefix}apache2ctl -t: Syntax OK\n")

    def restart(self):
        """A full restart; if Apache does not come up, undo this run and start the old config."""
        try:
            self.t.root.restart(self.out)
        except InstallError as exc:
            self.changes.rollback()
            try:
                self.t.root.restart(self.out)
                again = "Apache runs the previous config again"
            except InstallError:
                again = "Apache did not start with the previous config either"
            raise InstallError(f"{exc}; this run's changes were undone and {again}") from None

    # --- self-check ------------------------------------------------------------------
    def self_check(self):
        """GET /healthz through the installed vhost: exit code 0 on 200, else 1 (logs named)."""
        site, https = self.t.site, self.t.https
        scheme, port = ("https", site.tls_port) if https == "tls" else ("http", site.port)
        headers = {"Host": site.server_name if port in (80, 443) else f"{site.server_name}:{port}"}
        if https == "proxy":
            headers["X-Forwarded-Proto"] = "https"
        url = f"{scheme}://{headers['Host']}/healthz"
        status, body = probe(scheme, port, site.server_name, headers)
        via = " with X-Forwarded-Proto: https" if https == "proxy" else ""
        self.out.write(f"self-check: GET {url} (via 127.0.0.1{via}) -> {status} {body}\n")
        if status != 200:
            self.err.write(
                f"apache_conf: the site does not answer 200: see {site.log_dir}/{site.name}-"
                f"{'ssl-' if scheme == 'https' else ''}error.log and the Apache error log\n"
            )
            return 1
        return 0

    # --- uninstall --------------------------------------------------------------------
    def uninstall(self):
        """Revert the journal of the last install and restart Apache if it runs. Exit code."""
        t = self.t
        if not self.changes.journal:
            self.out.write(f"nothing to uninstall: no journal in {t.state_dir}\n")
            return 0
        count = self.changes.revert()
        if t.dry_run:
            self.out.write("would restart Apache if it runs\n")
            return 0
        self.out.write(f"restored {count} path(s) as they were before the install\n")
        if t.root.running_pid() is not None:
            if t.root.config_test().returncode == 0:
                t.root.restart(self.out)
            else:
                self.err.write(
                    f"apache_conf: {t.ctl_prefix}apache2ctl -t fails on the restored config: "
                    "Apache left running as it was\n"
                )
                return 1
        return 0


def probe(scheme, port, server_name, headers, timeout=SELF_CHECK_TIMEOUT):
    """GET /healthz on 127.0.0.1 with ``headers`` until it is not 503 (daemons starting).

    TLS: SNI is the ServerName and the certificate is not verified (this checks the
    site, not the certificate chain: a self-signed or not-yet-trusted one is fine).
    """
    deadline = time.monotonic() + timeout
    last = (0, "no answer")
    while time.monotonic() < deadline:
        try:
            if scheme == "https":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                conn = _SniConnection("127.0.0.1", port, timeout=30, context=context)
                conn.server_name = server_name
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", "/healthz", headers=headers)
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace").strip()[:200]
                last = (resp.status, body or resp.reason)
            finally:
                conn.close()
            if last[0] != 503:
                return last
        except OSError as exc:
            last = (0, f"no answer ({exc})")
        time.sleep(0.5)
    return last


class _SniConnection(http.client.HTTPSConnection):
    """An HTTPS connection to one address that sends another name as SNI."""

    server_name = None

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)
