"""The code base stays formatted and lint-clean (ruff, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "fmt"])
def test_ruff(args):
    result = subprocess.run([str(RUFF), *args], cwd=REPO_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_script_parses_and_has_help():
    assert subprocess.run(["bash", "-n", "deploy.sh"], cwd=REPO_DIR).returncode == 0
    result = subprocess.run(["./deploy.sh", "--help"], cwd=REPO_DIR, capture_output=True, text=True)
    assert result.returncode == 0 and "Usage: ./deploy.sh" in result.stdout


def test_deploy_script_rejects_bad_arguments_with_one_line():
    result = subprocess.run(
        ["./deploy.sh", "--variant", "nope"], cwd=REPO_DIR, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "prefork, threaded or hybrid" in result.stderr
