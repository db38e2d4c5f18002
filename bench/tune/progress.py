"""A progress bar on stderr: runs done of the runs planned, the shape being measured, time left.

On a terminal the bar is redrawn in place and each finished run prints one line above
it; elsewhere (a CI log, a pipe) every start and finish is one plain line. The total
grows when a refinement phase is planned, so "left" is the runs planned so far times the
mean run time.
"""

import sys
import time

WIDTH = 24


def clock(seconds):
    """``M:SS`` of ``seconds``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """One updating line on a terminal (a line per run otherwise): runs done,
    elapsed, estimated time left."""

    def __init__(self, total, run_estimate, stream=None):
        self.total = total
        self.estimate = run_estimate
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self.current = ""

    def grow(self, runs):
        """Add ``runs`` to the total (the search adds runs as it goes)."""
        self.total += runs

    def left(self):
        elapsed = time.monotonic() - self.started
        per_run = elapsed / self.done if self.done else self.estimate
        return per_run * (self.total - self.done)

    def line(self):
        filled = round(WIDTH * self.done / self.total) if self.total else WIDTH
        bar = "#" * filled + "-" * (WIDTH - filled)
        elapsed = time.monotonic() - self.started
        return (
            f"[{bar}] {self.done}/{self.total} {clock(elapsed)} elapsed, "
            f"~{clock(self.left())} left | {self.current}"
        )

    def begin(self, text):
        """Show the run starting."""
        self.current = text
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self, text):
        """Count the run done and print its outcome."""
        self.done += 1
        if self.tty:
            self.stream.write(f"\r\033[K  {self.current}: {text}\n" + self.line())
        else:
            self.stream.write(f"  {self.current}: {text}\n")
        self.stream.flush()

    def note(self, text):
        """Print a line above the bar."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        if self.tty:
            self.stream.write(self.line())
        self.stream.flush()

    def close(self):
        """Clear the bar (on a terminal)."""
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
