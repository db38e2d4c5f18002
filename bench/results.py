"""Where a run's result files go: a new folder named by the UTC time it started."""

from datetime import UTC, datetime
from pathlib import Path


def results_folder(parent):
    """A new ``parent/YYYYmmdd-HHMMSS`` folder (``-2``, ``-3``... when that one exists)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path, n = Path(parent) / stamp, 1
    while path.exists():
        n += 1
        path = Path(parent) / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path
