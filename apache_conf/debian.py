"""Debian's Apache layout (``/etc/apache2`` or a copy of it): modules, sites, ports, control.

Everything here takes the ServerRoot as a parameter; nothing assumes ``/etc/apache2``.
``apache2ctl`` is always run with ``APACHE_CONFDIR`` set to it, so that it sources that
root's ``envvars`` (pid file, run, lock and log directories) and passes ``-d`` to apache2.

File changes go through :class:`Changes`, which records what each path held before the
first install touched it, so that ``uninstall`` puts back exactly that, and prints every
change instead of making it in a dry run.
"""

import difflib
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from apache_conf.apachectl import module_config

SYSTEM_ROOT = Path("/etc/apache2")
APACHE2CTL = Path(os.environ.get("APACHE2CTL", "/usr/sbin/apache2ctl"))
#: Apache gets a clean environment (as under systemd): nothing of the caller's leaks in.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
#: MPMs that must be off for mpm_event (Debian loads exactly one).
OTHER_MPMS = ("mpm_prefork", "mpm_worker")
STOP_TIMEOUT = 60


class InstallError(Exception):
    """A step on the system Apache failed; ``str()`` is one line saying what to do."""


# --- reversible file changes ---------------------------------------------------------------
@dataclass
class Changes:
    """Writes, links and removals under a journal kept in ``state_dir``.

    The journal (``state_dir/journal.json`` plus one backup file per replaced file) holds
    each path's state before the *first* change any install made to it; ``revert`` puts
    them all back and empties the state directory. With ``dry_run`` nothing is touched and
    each change is printed instead.
    """

    state_dir: Path
    out: object
    dry_run: bool = False

    def __post_init__(self):
        self.state_dir = Path(self.state_dir)
        self.journal_path = self.state_dir / "journal.json"
        self.journal = {}
        if self.journal_path.is_file():
            self.journal = json.loads(self.journal_path.read_text())
        self.made = []  # what this run changed, in order (for messages and tests)
        self.run_before = {}  # path -> (kind, data, mode, uid, gid) before this run
        self.journal_before = dict(self.journal)

    # The journal ------------------------------------------------------------------------
    def _remember(self, path):
        key = str(path)
        if self.dry_run:
            return
        if key not in self.run_before:
            self.run_before[key] = _snapshot(path)
        if key in self.journal:
            return
        if path.is_symlink():
            entry = {"kind": "link", "target": os.readlink(path)}
        elif path.is_file():
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            backup = self.state_dir / f"backup-{len(self.journal)}"
            shutil.copy2(path, backup)
            st = path.stat()
            entry = {"kind": "file", "backup": str(backup), "uid": st.st_uid, "gid": st.st_gid}
        elif path.exists():
            raise InstallError(f"{path} is a directory where a file was expected: move it away")
        else:
            entry = {"kind": "absent"}
        self.journal[key] = entry
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal_path.write_text(json.dumps(self.journal, indent=1))

    def _say(self, line):
        self.made.append(line)
        self.out.write(("would " if self.dry_run else "") + line + "\n")

    # Changes ----------------------------------------------------------------------------
    def write(self, path, text, mode=0o644, owner=None, group=None, shown=lambda text: text):
        """Write ``text`` to ``path`` (atomically) unless it already holds exactly that.

        A dry run prints the change as a diff of ``shown(old)`` and ``shown(text)``
        (``shown`` masks secrets).
        """
        path = Path(path)
        old = path.read_text() if path.is_file() and not path.is_symlink() else None
        if old == text and _mode(path) == mode and _owned(path, owner, group):
            return False
        self._say(f"write {path} (mode {mode:04o})")
        if self.dry_run:
            diff = difflib.unified_diff(
                shown(old or "").splitlines(), shown(text).splitlines(), lineterm="", n=1
            )
            for line in list(diff)[2:]:  # without the ---/+++ header
                self.out.write(f"    | {line}\n")
            return True
        self._remember(path)
        tmp = path.with_name(f".{path.name}.new")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        if owner is not None or group is not None:
            shutil.chown(tmp, owner, group)
        os.replace(tmp, path)
        return True

    def link(self, path, target):
        """``path`` -> ``target`` (a relative symlink, as a2enmod makes)."""
        path = Path(path)
        if path.is_symlink() and os.readlink(path) == target:
            return False
        self._say(f"link {path} -> {target}")
        if not self.dry_run:
            self._remember(path)
            if path.is_symlink() or path.exists():
                path.unlink()
            path.symlink_to(target)
        return True

    def remove(self, path):
        """Unlink ``path`` (journalled for uninstall); False when there was nothing."""
        path = Path(path)
        if not (path.is_symlink() or path.exists()):
            return False
        self._say(f"remove {path}")
        if not self.dry_run:
            self._remember(path)
            path.unlink()
        return True

    def revert(self):
        """Put every path of the journal back as it was; return how many."""
        for key, entry in reversed(list(self.journal.items())):
            path = Path(key)
            self._say(f"restore {path} ({entry['kind']})")
            if self.dry_run:
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
            if entry["kind"] == "link":
                path.symlink_to(entry["target"])
            elif entry["kind"] == "file":
                shutil.copy2(entry["backup"], path)
                os.chown(path, entry["uid"], entry["gid"])
        count = len(self.journal)
        if not self.dry_run:
            for entry in self.journal.values():
                if entry["kind"] == "file":
                    Path(entry["backup"]).unlink(missing_ok=True)
            self.journal = {}
            self._forget()
        return count

    def _forget(self):
        """Remove the journal, and the state directory if nothing else is in it."""
        self.journal_path.unlink(missing_ok=True)
        try:
            self.state_dir.rmdir()
        except OSError:  # absent, or holds someone else's files: leave it
            pass

    def rollback(self):
        """Undo this run's changes (e.g. after a failed configtest); keep earlier installs'."""
        if self.dry_run:
            return
        for key, (kind, data, mode, uid, gid) in reversed(list(self.run_before.items())):
            path = Path(key)
            if path.is_symlink() or path.is_file():
                path.unlink()
            if kind == "link":
                path.symlink_to(data)
            elif kind == "file":
                path.write_bytes(data)
                os.chmod(path, mode)
                os.chown(path, uid, gid)
        for key in set(self.journal) - set(self.journal_before):
            entry = self.journal.pop(key)
            if entry["kind"] == "file":
                Path(entry["backup"]).unlink(missing_ok=True)
        if self.journal:
            self.journal_path.write_text(json.dumps(self.journal, indent=1))
        else:
            self._forget()
        self.run_before = {}


def _snapshot(path):
    if path.is_symlink():
        return ("link", os.readlink(path), 0, 0, 0)
    if path.is_file():
        st = path.stat()
        return ("file", path.read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
    return ("absent", None, 0, 0, 0)


def _mode(path):
    return path.stat().st_mode & 0o7777


def _owned(path, owner, group):
    st = path.stat()
    if owner is not None and st.st_uid != pwd.getpwnam(owner).pw_uid:
        return False
    return group is None or st.st_gid == grp.getgrnam(group).gr_gid


# --- the ServerRoot ----------------------------------------------------------------------
@dataclass(frozen=True)
class ServerRoot:
    """A Debian-style Apache configuration directory."""

    path: Path

    @property
    def is_system(self):
        """True for Debian's own /etc/apache2 (not a copy given by --server-root)."""
        return self.path.resolve() == SYSTEM_ROOT

    def check(self):
        """Raise InstallError unless this looks like a Debian ServerRoot."""
        if not (self.path / "apache2.conf").is_file() or not (self.path / "envvars").is_file():
            raise InstallError(
                f"{self.path} is not a Debian Apache ServerRoot (no apache2.conf/envvars): "
                "apt-get install --no-upgrade apache2, or pass --server-root DIR"
            )

    def available(self, kind, name, ext):
        return self.path / f"{kind}-available" / f"{name}.{ext}"

    def enabled(self, kind, name, ext):
        return self.path / f"{kind}-enabled" / f"{name}.{ext}"

    def is_enabled(self, kind, name, ext):
        return self.enabled(kind, name, ext).exists()

    def enable(self, changes, kind, name, exts):
        """What a2enmod/a2ensite do: link each existing available file into *-enabled."""
        for ext in exts:
            if self.available(kind, name, ext).exists():
                changes.link(self.enabled(kind, name, ext), f"../{kind}-available/{name}.{ext}")

    def disable(self, changes, kind, name, exts):
        """What a2dismod/a2dissite do: remove the *-enabled links."""
        for ext in exts:
            changes.remove(self.enabled(kind, name, ext))

    def listens(self, port):
        """True when ports.conf (or apache2.conf) already has a ``Listen`` for ``port``."""
        pattern = re.compile(rf"^\s*Listen\s+(\S+:)?{port}(\s|$)", re.M)
        return any(
            pattern.search(p.read_text()) for p in (self.path / "ports.conf",) if p.is_file()
        )

    def envvars(self):
        """The root's envvars, as apache2ctl sees them (APACHE_PID_FILE, APACHE_LOG_DIR...)."""
        script = '. "$APACHE_CONFDIR/envvars" && env'
        result = subprocess.run(
            ["sh", "-c", script], env=self.env(), capture_output=True, text=True, check=True
        )
        return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)

    def env(self, **extra):
        """apache2ctl's environment: a clean one with APACHE_CONFDIR set to this root."""
        return {**CLEAN_ENV, "APACHE_CONFDIR": str(self.path), **extra}

    def ctl(self, *args, **extra_env):
        """``apache2ctl ARGS`` for this root: CompletedProcess (output captured)."""
        return subprocess.run(
            [str(APACHE2CTL), *args],
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def config_test(self, *extra):
        return self.ctl("-t", *extra)

    def config_test_with(self, conf, venv=None):
        """``apache2ctl -t`` on this root's config plus ``conf`` and the venv's mod_wsgi
        (added with -c, after the config is read: nothing in the root changes)."""
        lines = [line for line in module_config(venv).splitlines() if line.strip()]
        if self.is_enabled("mods", "wsgi_express", "load") or self.is_enabled(
            "mods", "wsgi", "load"
        ):
            lines = [line for line in lines if not line.startswith("LoadModule")]
        extra = [arg for line in [*lines, f'Include "{conf}"'] for arg in ("-c", line)]
        return self.config_test(*extra)

    # Running server ----------------------------------------------------------------------
    def pid_file(self):
        return Path(self.envvars().get("APACHE_PID_FILE", "/var/run/apache2/apache2.pid"))

    def running_pid(self):
        """The pid in APACHE_PID_FILE if that process is alive, else None."""
        try:
            pid = int(self.pid_file().read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def uses_systemd(self):
        """systemd is PID 1 and this is the system's own root (its unit is apache2)."""
        return self.is_system and "systemd" in os.path.realpath("/proc/1/exe")

    def restart(self, out):
        """A full restart: stop, wait for the old server to exit, start.

        ``apache2ctl restart`` (SIGHUP) keeps the old ServerLimit/ThreadLimit, and
        ``apache2ctl stop`` returns before the server has exited.
        """
        if self.uses_systemd():
            out.write("systemctl restart apache2\n")
            result = subprocess.run(
                ["systemctl", "restart", "apache2"], capture_output=True, text=True
            )
            if result.returncode:
                raise InstallError(
                    "systemctl restart apache2 failed: see systemctl status apache2 "
                    f"and {self.envvars().get('APACHE_LOG_DIR')}/error.log"
                )
            return
        self.stop(out)
        out.write(f"APACHE_CONFDIR={self.path} apache2ctl start\n")
        # APACHE_STARTED_BY_SYSTEMD: apache2ctl would hand a root other than the system's
        # to "systemctl start apache2" on a systemd host.
        result = self.ctl("start", APACHE_STARTED_BY_SYSTEMD="1")
        if result.returncode or self.wait_for_pid() is None:
            log = self.envvars().get("APACHE_LOG_DIR", "/var/log/apache2")
            raise InstallError(
                f"apache2ctl start failed ({(result.stdout + result.stderr).strip()}): "
                f"see {log}/error.log"
            )

    def stop(self, out):
        """``apache2ctl stop`` and wait for the process to go (nothing if not running)."""
        pid = self.running_pid()
        if pid is None:
            return
        out.write(f"APACHE_CONFDIR={self.path} apache2ctl stop (pid {pid})\n")
        self.ctl("stop")
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid):
            if time.monotonic() > deadline:
                raise InstallError(
                    f"Apache (pid {pid}) still running {STOP_TIMEOUT}s after apache2ctl stop: "
                    "look at its error log, then stop it and rerun"
                )
            time.sleep(0.1)

    def wait_for_pid(self, timeout=30):
        """The running pid once Apache wrote it, or None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.running_pid()
            if pid is not None:
                return pid
            time.sleep(0.1)
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child, not reaped) has exited.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
