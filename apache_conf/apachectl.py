"""Check and run a generated config with Debian's real Apache, self-contained.

``StandaloneApache(root, site_conf)`` writes ``root/httpd.conf`` with its own ServerRoot,
PidFile, runtime directory, mutexes, scoreboard, logs and WSGISocketPrefix, loads the
pip-built mod_wsgi (``mod_wsgi-express module-config``) and includes the site config.
Nothing is read from /etc/apache2; Apache always gets ``-f``, and is started by its full
path so that the daemons' display-name is not cut short.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from apache_conf.render import render_template

APACHE2 = Path(os.environ.get("APACHE2", "/usr/sbin/apache2"))
APACHE2CTL = Path(os.environ.get("APACHE2CTL", "/usr/sbin/apache2ctl"))
MODULES_DIR = Path("/usr/lib/apache2/modules")
#: What a generated config needs besides the compiled-in core, log_config and unixd, plus
#: dir and autoindex, enabled on Debian by default (so ``Options -Indexes`` matters).
MODULES = ("mpm_event", "authz_core", "alias", "mime", "env", "dir", "autoindex")
#: Apache gets a clean environment: nothing from the caller (e.g. DJANGO_*) leaks into
#: the daemons' os.environ, as under systemd.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def module_config(venv=None):
    """The LoadModule/WSGIPythonHome lines for the mod_wsgi installed in ``venv``."""
    express = Path(venv or sys.prefix) / "bin" / "mod_wsgi-express"
    result = subprocess.run(
        [str(express), "module-config"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def free_port():
    """A port free on 127.0.0.1 now (product code cannot use harness.net)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandaloneApache:
    """One Apache instance in ``root`` serving ``site_conf`` on 127.0.0.1:``port``."""

    def __init__(
        self,
        root,
        site_conf,
        port=None,
        user="www-data",
        group="www-data",
        venv=None,
        log_level="info",
    ):
        self.root = Path(root)
        self.site_conf = Path(site_conf).resolve()
        self.port = port or free_port()
        self.user = user
        self.group = group
        self.venv = venv
        self.log_level = log_level
        self.conf = self.root / "httpd.conf"
        self.error_log = self.root / "logs" / "error.log"
        self.proc = None
        self._stderr = None

    def write(self):
        """Write httpd.conf and the run/ and logs/ directories (daemon-traversable)."""
        for path in (self.root, self.root / "run", self.root / "logs"):
            path.mkdir(parents=True, exist_ok=True)
        # The daemon user connects to sockets under run/: the path must be traversable.
        self.root.chmod(0o755)
        (self.root / "run").chmod(0o755)
        text = render_template(
            "apache_conf/standalone_httpd.conf",
            {
                "root": self.root,
                "site_conf": self.site_conf,
                "port": self.port,
                "user": self.user,
                "group": self.group,
                "log_level": self.log_level,
                "modules": MODULES,
                "modules_dir": MODULES_DIR,
                "module_config": module_config(self.venv),
            },
        )
        self.conf.write_text(text)
        return self.conf

    def config_test(self):
        """``apache2ctl -t -f httpd.conf``: CompletedProcess (``Syntax OK`` on stderr)."""
        self.write()
        return subprocess.run(
            [str(APACHE2CTL), "-t", "-f", str(self.conf)],
            env=CLEAN_ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, timeout=30):
        """Start ``/usr/sbin/apache2 -f httpd.conf -DFOREGROUND``; return once it listens."""
        self.write()
        self._stderr = open(self.root / "logs" / "stderr.log", "w")
        self.proc = subprocess.Popen(
            [str(APACHE2), "-f", str(self.conf), "-DFOREGROUND"],
            env=CLEAN_ENV,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apache2 exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"apache2 not listening on {self.port} after {timeout}s:\n{self.logs()}")

    def stop(self, timeout=30):
        """``apache2 -k stop`` (the parent stops its children and daemons); wait for it."""
        if self.proc is None:
            return
        subprocess.run(
            [str(APACHE2), "-f", str(self.conf), "-k", "stop"],
            env=CLEAN_ENV,
            capture_output=True,
            timeout=timeout,
        )
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        self._stderr.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def processes(self, display_name):
        """(pid, user, args) of the processes whose argv[0] is ``display_name``."""
        out = subprocess.run(
            ["ps", "-eo", "pid=,user=,args="], capture_output=True, text=True, check=True
        ).stdout
        found = []
        for line in out.splitlines():
            pid, user, args = line.strip().split(None, 2)
            if args == display_name or args.startswith(display_name + " "):
                found.append((int(pid), user, args.strip()))
        return found

    def logs(self):
        parts = []
        for path in sorted((self.root / "logs").glob("*")):
            text = path.read_text(errors="replace")[-6000:]
            parts.append(f"--- {path} ---\n{text}")
        return "\n".join(parts)

    def remove(self):
        """Stop the server and delete its root."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
