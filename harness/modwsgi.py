"""Start the site under a real ``mod_wsgi-express`` on a free port, for end-to-end tests."""

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from harness.net import free_port
from harness.site import SITE_DIR
from harness.waiting import poll, reap

WSGI_SCRIPT = SITE_DIR / "config" / "wsgi.py"
DAEMON_USER = "www-data"


def mod_wsgi_express():
    """This venv's ``mod_wsgi-express`` script."""
    path = Path(sys.executable).parent / "mod_wsgi-express"
    if not path.exists():
        raise RuntimeError("mod_wsgi-express is not installed in this venv: run ./deploy.sh setup")
    return str(path)


def stop_express(proc, server_root):
    """Stop the mod_wsgi-express ``proc`` with its server root's ``apachectl stop``."""
    apachectl = Path(server_root) / "apachectl"
    if apachectl.exists():
        subprocess.run([str(apachectl), "stop"], capture_output=True, timeout=30)
    reap(proc, 30)


def daemon_dir(prefix):
    """A fresh directory under /tmp that the daemon user owns (it writes logs there)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, DAEMON_USER, DAEMON_USER)
    path.chmod(0o755)
    return path


def get(url, timeout=10, headers=None):
    """GET ``url``; return (status, body text, headers) for any HTTP status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace"), err.headers


class ModWsgiServer:
    """A mod_wsgi-express instance serving the site with daemon processes x threads."""

    def __init__(
        self, work_dir, env, processes=2, threads=1, port=None, extra_args=(), base_env=None
    ):
        self.work_dir = Path(work_dir)
        self.server_root = self.work_dir / "server"
        self.port = port or free_port()
        self.processes = processes
        self.threads = threads
        self.env = env
        # What ``env`` is laid over: the caller's environment unless told otherwise.
        self.base_env = base_env
        self.extra_args = list(extra_args)
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        """The mod_wsgi-express start-server argv for this server."""
        cmd = [
            mod_wsgi_express(),
            "start-server",
            str(WSGI_SCRIPT),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
            "--server-root",
            str(self.server_root),
            "--python-path",
            str(SITE_DIR),
            "--log-level",
            "warn",
            "--locale",
            "C.UTF-8",
            "--startup-log",
            *self.extra_args,
        ]
        if os.geteuid() == 0:
            cmd += ["--user", DAEMON_USER, "--group", DAEMON_USER]
        return cmd

    def start(self, timeout=60, ready_path="/nodb/"):
        """Start and wait until ``ready_path`` answers (RuntimeError with the logs
        if it exits, TimeoutError after ``timeout`` s)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.work_dir, DAEMON_USER, DAEMON_USER)
        env = {**(os.environ if self.base_env is None else self.base_env), **self.env}
        self.log = open(self.work_dir / "express.log", "w")
        self.proc = subprocess.Popen(
            self.command(),
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        last = []

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mod_wsgi-express exited early:\n{self.logs()}")
            try:
                last[:] = [get(self.url + ready_path, timeout=5)[0]]
            except OSError as exc:
                last[:] = [exc]
            return last[0] == 200

        if poll(ready, timeout, 0.2):
            return self
        self.stop()
        raise TimeoutError(f"site not ready after {timeout}s (last: {last}):\n{self.logs()}")

    def stop(self):
        """Stop mod_wsgi-express and its Apache (idempotent)."""
        if self.proc is None:
            return
        stop_express(self.proc, self.server_root)
        self.proc = None
        self.log.close()

    def daemon_pids(self):
        """PIDs of the WSGI daemon processes (display name ``(wsgi:localhost:PORT:UID)``)."""
        out = subprocess.run(
            ["pgrep", "-f", f"^\\(wsgi:[^:]*:{self.port}:"], capture_output=True, text=True
        ).stdout
        return sorted(int(pid) for pid in out.split())

    def logs(self):
        """The tail of express.log and Apache's error_log, for failure messages."""
        parts = []
        for path in [self.work_dir / "express.log", self.server_root / "error_log"]:
            if path.exists():
                parts.append(f"--- {path} ---\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
