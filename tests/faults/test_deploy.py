"""deploy.sh, run for real on this checkout: no secret on any command line, its output
kept when redirected to a file, the daemons' environment, a venv it did not make left
alone. (docs/security.md, "Threat model".)

These run ./deploy.sh on this checkout's own var/ (its cluster and its var/apache): the
local server of the checkout, if one runs, is restarted, and the database password of
the local role is rotated once.
"""

import os
import re
import signal
import subprocess
from pathlib import Path

import psycopg2
import pytest

from harness.modwsgi import get
from harness.net import free_port
from harness.sampling import Sampler
from harness.waiting import wait_until

# deploy.sh checks that the daemon user can run the checkout's Python and starts daemons:
# with the Apache tests (not under --no-apache, whose venv's Python www-data cannot load).
pytestmark = pytest.mark.apache

REPO_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = REPO_DIR / "var"


def deploy_env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "PERSISTENT_", "ADMIN_", "DASHBOARD_"))
    }
    conf = (VAR_DIR / "postgres" / "postgresql.auto.conf").read_text()
    env["PG_PORT"] = re.findall(r"^port = (\d+)", conf, re.MULTILINE)[-1]
    env.update(extra)
    return env


def needs_local_deployment():
    if os.geteuid() != 0:
        pytest.skip("deploy.sh's checks of owners and of other processes need root")
    if not (VAR_DIR / "postgres" / "postgresql.auto.conf").exists():
        pytest.skip("no local cluster in var/postgres: run ./deploy.sh setup first")


def site_url_password():
    for line in (VAR_DIR / "site.env").read_text().splitlines():
        if line.startswith("DATABASE_URL="):
            return re.match(r"DATABASE_URL=postgres://site:([^@]+)@", line).group(1)
    raise AssertionError("no DATABASE_URL in var/site.env")


class CommandLines(Sampler):
    """Every distinct command line seen in /proc while it runs (a sampling thread)."""

    def __init__(self):
        super().__init__(0.002, name="cmdline-sampler")
        self.seen = set()
        self.samples = 0
        self._me = str(os.getpid())

    def sample(self):
        for pid in os.listdir("/proc"):
            if pid.isdigit() and pid != self._me:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        self.seen.add(fh.read())
                except OSError:
                    pass
        self.samples += 1


def psql_binary():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parts[-3]))
    assert found, "PostgreSQL's binaries are not installed"
    return str(found[-1])


def psql_postgres(sql):
    conf = (VAR_DIR / "postgres" / "postgresql.auto.conf").read_text()
    port = re.findall(r"^port = (\d+)", conf, re.MULTILINE)[-1]
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", psql_binary(), "-X", "-tA",
         "-h", str(VAR_DIR / "run"), "-p", port, "-d", "site", "-c", sql],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_setup_twice_never_shows_the_database_password():
    """Two ``./deploy.sh setup`` runs (the second rotating the password): neither password
    is ever on a command line (sampled from /proc all along), in pg_stat_statements or in
    the server's log; the first run leaves the password as it was."""
    needs_local_deployment()
    psql_postgres("SELECT pg_stat_statements_reset()")
    before = site_url_password()
    with CommandLines() as lines:
        runs = [
            subprocess.run(
                [str(REPO_DIR / "deploy.sh"), "setup"],
                env=deploy_env(**extra),
                capture_output=True,
                text=True,
                timeout=900,
            )  # fmt: skip
            for extra in ({}, {"ROTATE_DB_PASSWORD": "1"})
        ]
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    after = site_url_password()
    assert "setting a new password" not in runs[0].stderr
    assert "setting a new password" in runs[1].stderr and after != before
    assert lines.samples > 50 and len(lines.seen) > 20  # the sampler saw the run
    for password in (before, after):
        assert not [line for line in lines.seen if password.encode() in line]
        statements = psql_postgres(
            f"SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%{password}%'"
        )  # the literal only reaches this query's own text after the check ran
        assert statements.strip() == "0"
        log = (VAR_DIR / "log" / "postgres.log").read_text(errors="replace")
        assert password not in log
    # The new password works.
    conn = psycopg2.connect(
        f"postgres://site:{after}@127.0.0.1:{deploy_env()['PG_PORT']}/site", connect_timeout=5
    )
    conn.close()


def test_redirected_output_keeps_every_line_and_daemons_get_no_admin_password():
    """``./deploy.sh > log 2>&1``: the set-up lines stay (no NUL bytes where Apache
    reopened the file); the daemons' environment holds DJANGO_HTTPS=0 (this local run
    only) and not the operator's ADMIN_PASSWORD."""
    needs_local_deployment()
    port = free_port()
    admin_password = (VAR_DIR / "admin-password").read_text().strip()
    log_path = VAR_DIR / "test-output" / "deploy-redirect.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(REPO_DIR / "deploy.sh"), "--port", str(port)],
            env=deploy_env(ADMIN_PASSWORD=admin_password),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:

        def answering():
            try:
                return get(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200
            except OSError:
                return proc.poll() is not None  # exited: the assertions below say why

        wait_until(answering, timeout=600, step=1, what="the site started by ./deploy.sh")
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        pids = subprocess.run(
            ["pgrep", "-f", f"^\\(wsgi:[^:]*:{port}:"], capture_output=True, text=True
        ).stdout.split()
        assert pids
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not [v for v in environ if v.startswith(b"ADMIN_PASSWORD=")]
            assert b"DJANGO_HTTPS=0" in environ
    finally:
        subprocess.run([str(VAR_DIR / "apache" / "apachectl"), "stop"], capture_output=True)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what it started
            proc.wait(timeout=30)
    text = log_path.read_bytes()
    assert b"\0" not in text, "the log lost lines (NUL bytes where they were)"
    text = text.decode(errors="replace")
    assert "==> migrating, loading demo data, collecting static files" in text
    assert f"==> site:      http://localhost:{port}/" in text
    assert "resuming normal operations" in text  # Apache's own lines follow
    assert text.count("DJANGO_HTTPS is off with DEBUG off") >= 1  # the daemon's warning
    assert admin_password not in text


def test_deploy_never_deletes_a_virtualenv_it_did_not_make(tmp_path):
    """VENV naming a directory with a bin/python of another interpreter, without the stamp
    deploy.sh leaves in the venvs it makes: a clear error, and the directory stays."""
    needs_local_deployment()
    venv = tmp_path / "someone-elses-venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\necho /opt/another/python3\n")
    python.chmod(0o755)
    (venv / "keep-me").write_text("data")
    result = subprocess.run(
        [str(REPO_DIR / "deploy.sh"), "setup"], env=deploy_env(VENV=str(venv)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "was not made by deploy.sh" in result.stderr, result.stderr
    assert (venv / "keep-me").read_text() == "data"
