"""End to end: ``python -m bench.tune --quick`` with a tiny duration, against real
mod_wsgi-express daemons and a real PostgreSQL, then its outputs read back."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from apache_conf.apachectl import StandaloneApache
from apache_conf.tune import BASELINE, label
from harness.site import clean_environ

REPO_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run():
    parent = Path(tempfile.mkdtemp(prefix="tune-quick-"))
    cmd = [
        sys.executable,
        "-m",
        "bench.tune",
        "--quick",
        "--duration",
        "1",
        "--warmup",
        "1",
        "--max-processes",
        "2",
        "--max-threads",
        "2",
        # The budget given, so that no site database is probed; a p99 bound no run can
        # miss, so that a choice is made however busy the machine is.
        "--max-connections",
        "100",
        "--superuser-reserved",
        "3",
        "--others",
        "0",
        "--p99-ms",
        "60000",
        "--out",
        str(parent),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO_DIR, env=clean_environ(), capture_output=True, text=True, timeout=900
    )
    folders = sorted(parent.iterdir())
    yield proc, folders[-1] if folders else None
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.apache
def test_quick_tune_writes_every_output(quick_run):
    proc, folder = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert folder is not None
    names = {path.name for path in folder.iterdir()}
    assert {"result.json", "report.md", "chart.png", "tuned.conf", "tuned.env", "mix.txt"} <= names
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((folder / "result.json").read_text())
    chosen = result["choice"]["chosen"]
    assert set(chosen) >= {"processes", "threads", "mode", "max_size"}
    assert chosen["mode"] == ("process" if chosen["threads"] == 1 else "pool")
    shapes = {s["shape"] for s in result["shapes"]}
    assert label(BASELINE) in shapes and {"1x1", "2x1", "1x2", "2x2"} <= shapes
    assert result["phases"][0]["name"] == "coarse"
    assert (
        f"processes={chosen['processes']} threads={chosen['threads']}"
        in (folder / "tuned.conf").read_text()
    )
    assert f"PERSISTENT_MODE={chosen['mode']}" in (folder / "tuned.env").read_text()
    report = (folder / "report.md").read_text()
    assert f"`{chosen['shape']}`" in report
    # The progress bar went to stderr, with the time left.
    assert "left |" in proc.stderr


@pytest.mark.apache
def test_every_measured_shape_served_2xx(quick_run):
    proc, folder = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((folder / "result.json").read_text())
    assert result["runs"]
    for run in result["runs"]:
        assert run["error"] is None, run
        assert run["ok"] > 0 and run["non2xx"] == 0, run
        assert run["rss_per_process_bytes"] > 0 and run["backends_max"] >= 1, run
        assert set(run["cpu_percent"]) == {"daemons", "apache", "postgres", "wrk", "other"}


@pytest.mark.apache
def test_the_tuned_outputs_are_usable(quick_run):
    proc, folder = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    shell = subprocess.run(
        [sys.executable, "-m", "apache_conf.tune", "--shell", "--from", str(folder)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
    )
    chosen = json.loads((folder / "result.json").read_text())["choice"]["chosen"]
    assert shell.stdout == (
        f"PROCESSES={chosen['processes']} THREADS={chosen['threads']} "
        f"PERSISTENT_MODE={chosen['mode']}\n"
    )
    with tempfile.TemporaryDirectory(prefix="tune-check-") as root:
        check = StandaloneApache(root, folder / "tuned.conf").config_test()
    assert check.returncode == 0, check.stdout + check.stderr
