"""Tests of the bench; ``run_module`` runs one of its commands as a user would."""

import subprocess
import sys

from harness.site import REPO_DIR, clean_environ


def run_module(module, *args, timeout=300):
    """``python -m MODULE ARGS`` from the repository, without the caller's site settings."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_DIR,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
