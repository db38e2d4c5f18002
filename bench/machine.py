"""What the figures were measured on: machine, load, software versions, commit."""

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil

REPO_DIR = Path(__file__).resolve().parents[1]


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def os_name():
    """PRETTY_NAME of /etc/os-release, else platform.platform()."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit():
    """The repo's short HEAD, with "-dirty" when the tree has changes; None outside git."""
    commit = _first_line(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    if not commit or " " in commit:
        return None
    status = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout
    return commit + ("-dirty" if status.strip() else "")


def describe(extra_versions=None):
    """A dict for results.json's meta."""
    load = os.getloadavg()
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": os_name(),
        "kernel": platform.release(),
        "load_before": [round(value, 2) for value in load],
        "versions": {
            "python": platform.python_version(),
            "django": _version("Django"),
            "psycopg2": _version("psycopg2") or _version("psycopg2-binary"),
            "psycopg": _version("psycopg"),
            "psycopg_pool": _version("psycopg-pool"),
            "mod_wsgi": _version("mod_wsgi"),
            "apache": _first_line(["/usr/sbin/apache2", "-v"]),
            **(extra_versions or {}),
        },
        "commit": git_commit(),
        "executable": sys.executable,
    }
