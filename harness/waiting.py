"""Polling until a condition holds: the one deadline loop of the tests and the bench;
waiting for a child process to exit."""

import subprocess
import time


def poll(check, timeout, step=0.05):
    """Call ``check`` every ``step`` seconds until it returns something true or ``timeout``
    seconds have passed (it is always called at least once); return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def wait_until(check, timeout=20, step=0.05, what="condition"):
    """Poll ``check`` until it returns something true; TimeoutError after ``timeout``."""
    value = poll(check, timeout, step)
    if not value:
        raise TimeoutError(f"{what} not reached in {timeout}s")
    return value


def reap(proc, timeout):
    """Wait for the child ``proc`` to exit; kill it if it has not after ``timeout`` s."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
