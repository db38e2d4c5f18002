"""Progress of a bench run on stderr: one line per step, elapsed and an estimate of the rest."""

import sys
import time


class Progress:
    """One line per step on stderr: where we are, elapsed, an estimate of the time left."""

    def __init__(self, total_steps, step_estimate, stream=sys.stderr):
        self.total = total_steps
        self.estimate = step_estimate
        self.done = 0
        self.start = time.monotonic()
        self.stream = stream

    def left(self):
        """Estimated seconds left: the mean step so far (the estimate before any)."""
        elapsed = time.monotonic() - self.start
        per_step = elapsed / self.done if self.done else self.estimate
        return per_step * (self.total - self.done)

    def step(self, text):
        """Announce the next step, with elapsed and estimated time left."""
        elapsed = time.monotonic() - self.start
        print(
            f"[{self.done + 1:>3}/{self.total}] {_clock(elapsed)} elapsed, "
            f"~{_clock(self.left())} left | {text}",
            file=self.stream,
            flush=True,
        )

    def finish_step(self, text):
        """Count the step done and print its outcome."""
        self.done += 1
        print(f"          {text}", file=self.stream, flush=True)

    def note(self, text):
        print(f"          {text}", file=self.stream, flush=True)


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


def describe_run(run):
    """One line of a run's figures, or why it failed."""
    if run.get("error"):
        return f"FAILED: {run['error'].splitlines()[0][:200]}"
    mean = "-" if run["backends_mean"] is None else f"{run['backends_mean']:.1f}"
    return (
        f"{run['rps']:8.1f} req/s  p50 {run['latency_ms']['p50']:.1f} ms  "
        f"p99 {run['latency_ms']['p99']:.1f} ms  non-2xx {run['non2xx']}  "
        f"errors {run['socket_errors']}  backends mean {mean} (max "
        f"{run['backends_max']})  statements/request {run['statements_per_request']:.2f}"
    )
