"""A background sampler: ``with Sampler(interval) as s: ...`` calls ``s.sample()`` every
``interval`` seconds in a daemon thread, from entry until exit (and once more at exit's
start if it never ran), so the figures cover the whole block."""

import threading


class Sampler:
    """Subclasses define ``sample()``; it runs in the sampling thread only."""

    def __init__(self, interval, name="sampler"):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self):
        """Take one sample (subclasses); called every ``interval`` s until stop()."""
        raise NotImplementedError

    def _run(self):
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
