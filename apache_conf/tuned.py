"""A tune run's result.json, read back: tuned.conf, tuned.env, and the shape for deploy.sh.

The file lives under var/ and is input like any other: every value used is checked, and
its texts are reduced to one printable line before they reach a config comment.
``python -m apache_conf.tune --shell [--from RUN]`` prints the newest run's shape
(``./deploy.sh --variant tuned``); ``manage.py apache_conf --tune [RUN]`` writes its config.
"""

import json
import re
from pathlib import Path

from apache_conf import render
from apache_conf.sizing import Budget, Machine, Plan, SizingError
from apache_conf.tune import TUNE_DIR, TuneError, label, shape_of

SHELL_RE = re.compile(r"^PROCESSES=[0-9]+ THREADS=[0-9]+ PERSISTENT_MODE=(process|pool)$")


def env_lines(key):
    """The site's settings for the shape (var/site.env lines)."""
    shape = shape_of(*key)
    return [f"PERSISTENT_MODE={shape.mode}", f"PERSISTENT_MAX_SIZE={shape.connections_per_process}"]


BUDGET_INTS = ("max_connections", "superuser_reserved", "reserved", "others", "spare")
BUDGET_LIMITS = ("role_limit", "role_others", "database_limit", "database_others")
UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]+")


def one_line(value, limit=300):
    """A result file's text made safe for a config comment: printable ASCII, one line."""
    return UNPRINTABLE_RE.sub(" ", str(value))[:limit]


def _number(mapping, name, low=0):
    value = mapping.get(name) if isinstance(mapping, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TuneError(f"the result's {name} is missing or not a whole number >= {low}")
    return value


def recorded_sizing(result):
    """(machine, budget, hosts) as the run recorded them, checked: the file is input."""
    meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
    recorded_machine = meta.get("machine")
    machine = Machine(
        _number(recorded_machine, "cores_used", 1), _number(recorded_machine, "memory_bytes", 1)
    )
    recorded = meta.get("budget") if isinstance(meta.get("budget"), dict) else {}
    limits = {name: _number(recorded, name, -1) for name in BUDGET_LIMITS if name in recorded}
    budget = Budget(
        **{name: _number(recorded, name) for name in BUDGET_INTS},
        **limits,
        source=one_line(recorded.get("source", "recorded by the tune run")),
    )
    return machine, budget, _number(meta, "hosts", 1)


def tuned_outputs(result, site, command):
    """{"tuned.conf": text, "tuned.env": text} for the chosen shape of a result dict."""
    chosen = chosen_key(result)
    machine, budget, hosts = recorded_sizing(result)
    meta, choice = result["meta"], result["choice"]
    date = one_line(meta.get("date", "?"), 40)
    note = (
        f"measured by `{one_line(meta.get('command', '?'))}` on {date}: "
        f"{one_line(choice.get('reason', ''))}"
    )
    plan = Plan(shape_of(*chosen), machine, budget, hosts, note=note)
    conf = render.render_variant(plan, site, command, file_name="tuned.conf")
    env = "\n".join(
        [
            f"# Settings for the tuned shape {label(chosen)} ({date}); add them to var/site.env",
            *env_lines(chosen),
        ]
    )
    return {"tuned.conf": conf, "tuned.env": env + "\n"}


def chosen_key(result):
    """(processes, threads) a result chose; TuneError when it chose none or is malformed."""
    chosen = (result.get("choice") or {}).get("chosen")
    if not isinstance(chosen, dict):
        raise TuneError("the result has no chosen shape (the run chose none)")
    try:
        key = (int(chosen["processes"]), int(chosen["threads"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TuneError(f"the result's chosen shape is malformed: {exc!r}") from None
    shape_of(*key)  # raises SizingError below 1
    if max(key) > 999:
        raise TuneError(f"the result's chosen shape {label(key)} is implausible")
    return key


def load_result(path):
    """result.json from a file or a run folder; TuneError with one line if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TuneError(f"{path}: no such file (run ./deploy.sh tune first)") from None
    except (OSError, ValueError) as exc:
        raise TuneError(f"{path}: not a readable result.json ({exc})") from None
    if not isinstance(data, dict) or "meta" not in data or "choice" not in data:
        raise TuneError(f"{path}: not a tune result (no meta/choice)")
    return data


def latest_run(parent=TUNE_DIR):
    """The newest run folder under var/tune that holds a result.json."""
    parent = Path(parent)
    runs = sorted(p for p in parent.glob("*/result.json")) if parent.is_dir() else []
    if not runs:
        raise TuneError(f"no tune result under {parent}: run ./deploy.sh tune first")
    return runs[-1].parent


def shell_line(result):
    """The chosen shape as deploy.sh's eval line (checked against SHELL_RE)."""
    key = chosen_key(result)
    line = shape_of(*key).shell()
    assert SHELL_RE.match(line)
    return line


def main(argv=None):
    """``python -m apache_conf.tune --shell [--from DIR]``: the last tuned shape."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m apache_conf.tune",
        description="Print the shape a tune run chose (deploy.sh --variant tuned). "
        "Measuring is ./deploy.sh tune (python -m bench.tune).",
    )
    parser.add_argument("--shell", action="store_true", help="PROCESSES=.. THREADS=.. (default)")
    parser.add_argument("--from", dest="source", help="a run folder or result.json (newest)")
    args = parser.parse_args(argv)
    try:
        source = args.source or latest_run()
        line = shell_line(load_result(source))
    except (TuneError, SizingError) as exc:
        print(f"apache_conf.tune: {exc}", file=sys.stderr)
        return 2
    print(line)
    return 0
