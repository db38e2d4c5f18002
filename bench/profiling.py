"""``--profile``: sample the daemon processes with py-spy while the load runs.

py-spy attaches from outside (as root), so the site needs no change; it records each
daemon process's Python stacks in wall-clock time (``--idle``: waiting on PostgreSQL or
on a connect counts too) as collapsed stacks (``profiles/*.txt``, which speedscope and
flamegraph.pl read), and the bench summarises where the requests' time goes: among the
samples taken inside Django's WSGI handler (idle threads, and background threads such as
a metrics publisher, left out), the functions most often on top of the stack (self) and
most often anywhere in it (total).
Sampling costs CPU on the same cores, so a profiled run's figures are not comparable.
"""

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 200  # samples per second per process
TOP = 12
REQUEST_FRAME = "handlers/wsgi.py"  # django.core.handlers.wsgi: a request is in progress


def py_spy_binary():
    """py-spy from the venv or PATH, None when not installed."""
    for candidate in (Path(sys.executable).parent / "py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def summarise_collapsed(lines, top=TOP, within=REQUEST_FRAME):
    """Shares of frames (self, total) in collapsed stacks ``a;b;c COUNT`` containing
    ``within`` (all stacks when none does)."""
    parsed = []
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            parsed.append((stack.split(";"), int(count)))
    inside = [(frames, count) for frames, count in parsed if any(within in f for f in frames)]
    own, total, samples = Counter(), Counter(), 0
    for frames, count in inside or parsed:
        # py-spy prefixes the thread/process ("process 123:..."); keep Python frames only.
        frames = [frame for frame in frames if "(" in frame] or frames
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return {"samples": 0, "all_samples": 0, "self": [], "total": []}
    return {
        "samples": samples,
        "all_samples": sum(count for _, count in parsed),
        "self": [(frame, count / samples) for frame, count in own.most_common(top)],
        "total": [(frame, count / samples) for frame, count in total.most_common(top)],
    }


class Profiler:
    """py-spy around the measured load (--profile): raises at once when py-spy is missing."""

    def __init__(self, out_dir, enabled):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.binary = py_spy_binary() if enabled else None
        if enabled and self.binary is None:
            raise RuntimeError(
                "--profile needs py-spy: pip install py-spy into the venv "
                f"({Path(sys.executable).parent}/pip install py-spy)"
            )

    @contextlib.contextmanager
    def record(self, pids, duration, run):
        """Profile ``pids`` for ``duration`` seconds around the block; fill ``run``."""
        if not self.enabled or not pids:
            yield
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"round{run['round']}-{run['variant']}-{run['config']}-{run['page']}"
        procs = []
        for pid in pids:
            path = self.out_dir / f"{stem}-{pid}.txt"
            cmd = [
                self.binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(duration),
                "--rate",
                str(RATE),
                "--idle",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(path),
            ]
            procs.append(
                (path, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            )
        try:
            yield
        finally:
            summaries, paths = [], []
            for path, proc in procs:
                try:
                    _, err = proc.communicate(timeout=duration + 30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, err = proc.communicate()
                if proc.returncode != 0 or not path.exists():
                    run.setdefault("profile_errors", []).append(err.decode(errors="replace")[-500:])
                    continue
                paths.append(str(path))
                summaries.append(path.read_text().splitlines())
            run["profiles"] = paths
            run["profile"] = summarise_collapsed(line for lines in summaries for line in lines)
