"""``python -m bench.pinned``: what a pinned unit of work costs at its end (issue 11).

A unit of work that left session state behind (``SET``, an advisory lock...) is *pinned*:
its connection must not reach the next one as it is. Two ways to give it back clean:
``DISCARD ALL`` and Django's connection setup again (what persistent_backend does), or
closing it so the next unit of work opens a new one. This measures, in one process and
against the site's database (``DJANGO_ENV_FILE``/``DATABASE_URL``, as ``manage.py``), the
wall time per unit of work, interleaved in rounds:

* ``plain``: ``SHOW statement_timeout`` + ``SELECT 1``, the connection goes back as it
  is (no statement);
* ``pinned_reset``: ``SET statement_timeout`` + ``SELECT 1``, reset with DISCARD ALL;
* ``pinned_drop``: the same, the connection closed (``pin(drop=True)``), the next unit
  of work reconnects.

Writes a JSON file (default ``docs/figures/pinned-reset-<driver>.json``) and prints the
row of docs/guarantees.md's figures table; tests/backend/test_docs.py checks they agree.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
FIGURES_DIR = REPO_DIR / "docs" / "figures"
VARIANTS = ("plain", "pinned_reset", "pinned_drop")


def unit_of_work(variant):
    """Seconds of one unit of work in ``variant`` (plain, pinned_reset: a session setting
    to reset at its end, pinned_drop: the connection dropped at its end)."""
    from django.db import close_old_connections, connection

    import persistent_backend

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The same round trips in each variant: only the end of the unit of work differs.
        if variant == "plain":
            cursor.execute("SHOW statement_timeout")
        else:
            cursor.execute("SET statement_timeout = '5s'")
        if variant == "pinned_drop":
            persistent_backend.pin(drop=True)
        cursor.execute("SELECT 1")
    close_old_connections()  # the end of the unit of work, as request_finished
    return time.perf_counter() - started


def measure(units, rounds):
    """Median and mean per unit of each variant over interleaved rounds (process mode),
    the reset and drop costs over plain, and the backend's counters."""
    from django.db import connection

    import persistent_backend

    connection.settings_dict["OPTIONS"]["persistent"] = {"mode": "process"}
    unit_of_work("plain")  # the first connection is not part of any figure
    timings = {variant: [] for variant in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            # The unit after a drop pays the reconnect: time pairs, then split evenly.
            for _ in range(units // rounds):
                timings[variant].append(unit_of_work(variant))
    stats = persistent_backend.stats()["default"]
    result = {
        variant: {
            "units": len(values),
            "median_ms": round(statistics.median(values) * 1000, 3),
            "mean_ms": round(statistics.fmean(values) * 1000, 3),
        }
        for variant, values in timings.items()
    }
    plain = result["plain"]["median_ms"]
    return {
        "units": result,
        "reset_cost_ms": round(result["pinned_reset"]["median_ms"] - plain, 3),
        "drop_cost_ms": round(result["pinned_drop"]["median_ms"] - plain, 3),
        "resets": stats["pinned_resets"],
        "opened": stats["opened"],
        "server_version": connection.pg_version,
        "driver": connection.Database.__name__,
    }


def markdown_row(figures):
    """The row of docs/guarantees.md's figures table for one JSON file."""
    units = figures["units"]
    cells = [
        figures["driver"],
        *(f"{units[variant]['median_ms']:.3f}" for variant in VARIANTS),
        f"{figures['reset_cost_ms']:.3f}",
        f"{figures['drop_cost_ms']:.3f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    """``python -m bench.pinned``: measure, write the JSON, print the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.pinned", description=__doc__.split("\n")[0])
    p.add_argument("--units", type=int, default=1000, help="units of work per variant")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    p.add_argument("--out", type=Path, help="JSON file to write (default: per driver)")
    args = p.parse_args(argv)
    if args.units < args.rounds or args.rounds < 1:
        p.error("--units must be at least --rounds, and --rounds at least 1")
    sys.path.insert(0, str(REPO_DIR / "site"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    figures = measure(args.units, args.rounds)
    figures["command"] = "python -m bench.pinned " + " ".join(argv or sys.argv[1:])
    out = args.out or FIGURES_DIR / f"pinned-reset-{figures['driver']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"docs/guarantees.md row:\n{markdown_row(figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
