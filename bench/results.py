"""Where a run's result files go: a new folder named by the UTC time it started."""

import json
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


def run_meta(machine, command):
    """What a published result file says about its run: when, on what, which commit, how."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{machine['cpu']}, {machine['cores']} cores",
        "load_before": machine["load_before"],
        "commit": machine["commit"],
        "command": command,
    }


def write_published(out, data, text):
    """Write a run's file (JSON) and print its rendering (0: the exit code)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(text)
    print(f"written to {out}")
    return 0
