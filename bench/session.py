"""What ``python -m bench`` and ``python -m bench.tune`` share around their measurements.

Both set up a PostgreSQL cluster with the demo data in a work directory the daemons can
read, run their measurements, assemble a result while the cluster still answers, and
always remove both; Ctrl-C during the measurements keeps the runs done so far.
"""

import shutil
import sys
import time
from datetime import UTC, datetime

from bench.database import BenchDatabase
from harness.modwsgi import daemon_dir

SETUP_ERRORS = (RuntimeError, TimeoutError, OSError)


class Session:
    """Base of the bench's and the tuner's runs: its cluster and work directory.

    Subclasses define ``prepare()`` (calling :meth:`start_database` first) and ``run()``.
    """

    database = None
    work_dir = None

    def start_database(self, prefix, max_connections):
        """A fresh cluster with the demo data in a new daemon-readable work directory."""
        self.work_dir = daemon_dir(prefix)
        self.database = BenchDatabase(max_connections=max_connections).start(self.work_dir)
        return self.database

    def cleanup(self):
        """Remove the cluster and the work directory (whatever prepare() got to)."""
        if self.database is not None:
            self.database.destroy()
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def drive(session, prog, assemble):
    """prepare(), run(), then ``assemble(started, wall_seconds, interrupted)``; cleanup() always.

    Returns ``(result, interrupted)``, or None when set-up failed (said on stderr as
    ``PROG: set-up failed: ...``).
    """
    started, clock = datetime.now(UTC), time.monotonic()
    try:
        try:
            session.prepare()
        except SETUP_ERRORS as exc:
            print(f"{prog}: set-up failed: {exc}", file=sys.stderr)
            return None
        interrupted = False
        try:
            session.run()
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: writing the runs done so far", file=sys.stderr)
        return assemble(started, time.monotonic() - clock, interrupted), interrupted
    finally:
        session.cleanup()
