"""A real PgBouncer (Debian's package) process on a free port, for the tests and the bench.

Whoever owns it writes its ``pgbouncer.ini`` (and userlist) into ``work_dir``;
``PgBouncerProcess.run()`` starts PgBouncer on that ini in the foreground and returns once
it accepts connections. As root, the directory and its files are handed to ``RUN_AS``
first and PgBouncer runs as that user (it refuses to run as root).
"""

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from apache_conf.sizing import Shape
from harness.net import free_port, listening
from harness.waiting import poll, reap

RUN_AS = "postgres"


def pgbouncer_binary():
    """Path of the ``pgbouncer`` executable (RuntimeError saying what to install)."""
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("pgbouncer is not installed: apt-get install pgbouncer")


def pgbouncer_version():
    """The first line of ``pgbouncer --version``."""
    out = subprocess.run([pgbouncer_binary(), "--version"], capture_output=True, text=True)
    return (out.stdout.strip().splitlines() or ["unknown"])[0]


def shape_of(processes, threads):
    """The apache_conf variant with this daemon shape (and its persistent_backend mode)."""
    variant = "prefork" if threads == 1 else "threaded" if processes == 1 else "hybrid"
    return Shape(variant, processes, threads)


class PgBouncerProcess:
    """One PgBouncer listening on ``host:port``, its files in ``work_dir``."""

    host = "127.0.0.1"

    def __init__(self, work_dir=None, port=None):
        self.work_dir = Path(work_dir) if work_dir else None
        self.port = port or free_port()
        self.proc = None

    @property
    def ini(self):
        return self.work_dir / "pgbouncer.ini"

    def run(self, timeout=15):
        """Start PgBouncer on ``ini``; RuntimeError (with the log) if it exits, TimeoutError
        (after stopping it) if it does not listen within ``timeout`` seconds."""
        user = None
        if os.geteuid() == 0:
            user = RUN_AS
            entry = pwd.getpwnam(RUN_AS)
            for path in [self.work_dir, *self.work_dir.iterdir()]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.proc = subprocess.Popen(
            [pgbouncer_binary(), str(self.ini)],
            user=user,
            group=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            start_new_session=True,
        )

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited early:\n{self.logs()}")
            return listening(self.host, self.port)

        if not poll(up, timeout):
            self.stop()
            raise TimeoutError(f"pgbouncer not listening on {self.port} after {timeout}s")
        return self

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM: immediate shutdown (clients' connections are cut); SIGINT: safe one."""
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        reap(self.proc, 15)
        self.proc = None

    def destroy(self):
        """Stop it and delete its directory."""
        PgBouncerProcess.stop(self)
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def logs(self):
        """The tail of pgbouncer.log ("" before it exists)."""
        path = self.work_dir / "pgbouncer.log" if self.work_dir else None
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""
