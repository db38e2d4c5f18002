"""result.json, report.md, and docs/tuning.md's generated section (chart.png: :mod:`.chart`).

Everything renders from the result dict alone, so a committed run renders again
identically (``python -m bench.tune --docs-from docs/tuning``), which the docs test checks.
"""

import dataclasses
import json
import re
import shlex
from pathlib import Path

from apache_conf.tune import BASELINE, TuneError, label
from bench.load import wrk_version
from bench.machine import describe

DOCS_BEGIN = "<!-- tune:begin -->"
DOCS_END = "<!-- tune:end -->"
#: The issue's acceptance: chosen >= 1.3x the baseline and within 5% of the best measured.
TARGET_VS_BASELINE = 1.3
TARGET_VS_BEST = 0.95
MIB = 2**20


# --- the result dict ----------------------------------------------------------------------
def meta(tuner, argv, started, wall, interrupted, objective):
    """The run's meta: machine, versions, options, objective, timing."""
    space, args = tuner.space, tuner.args
    machine = describe()
    machine.update(cores_used=space.machine.cores, memory_bytes=space.machine.memory_bytes)
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "./deploy.sh tune" + (" " + shlex.join(argv) if argv else ""),
        "machine": machine,
        "postgres": tuner.database.server_version() if tuner.database else None,
        "wrk": wrk_version(),
        "wall_seconds": round(wall),
        "interrupted": interrupted,
        "options": {
            "quick": args.quick,
            "duration": args.duration,
            "warmup": args.warmup,
            "repeat": args.repeat,
            "concurrency": args.concurrency,
            "wrk_threads": args.wrk_threads,
        },
        "hosts": space.hosts,
        "budget": dataclasses.asdict(space.budget),
        "limits": {
            "processes": space.process_limit,
            "threads": space.thread_limit,
            "usable_connections": space.budget.usable,
        },
        "objective": {
            "p99_ms": objective.p99_ms,
            "tie": objective.tie,
            "memory_bytes": objective.memory_bytes,
        },
        "mix": {
            "source": tuner.mix_source,
            "paths": len(tuner.paths or []),
            "sample": (tuner.paths or [])[:8],
        },
        "baseline": label(BASELINE),
    }


def _ratio(top, bottom):
    if not top or not bottom or not bottom["rps"] or not top["rps"]:
        return None
    return top["rps"]["median"] / bottom["rps"]["median"]


def result_dict(meta_, phases, runs, summaries, choice, noise):
    """The result.json dict: meta, phases, runs, a row per shape, the choice."""
    by_label = {label(key): s for key, s in summaries.items()}
    base = by_label.get(meta_["baseline"])
    shapes = []
    for key in sorted(summaries):
        s = summaries[key]
        shapes.append(
            {
                **s,
                "vs_baseline": _ratio(s, base),
                "verdict": choice.verdicts.get(label(key), "-") if choice else "-",
            }
        )
    chosen = best = None
    if choice and choice.chosen:
        c = summaries[choice.chosen]
        chosen = {k: c[k] for k in ("shape", "processes", "threads", "mode", "max_size")}
        chosen["connections"] = c["connections"]
    if choice and choice.best:
        best = label(choice.best)
    chosen_summary = by_label.get(chosen["shape"]) if chosen else None
    result = {
        "meta": meta_,
        "phases": phases,
        "runs": runs,
        "shapes": shapes,
        "choice": {
            "chosen": chosen,
            "best": best,
            "reason": choice.reason if choice else "nothing was measured",
            "p99_bound_ms": choice.p99_bound_ms if choice else None,
            "p99_bound_source": choice.p99_bound_source if choice else "",
            "memory_limit_bytes": choice.memory_limit_bytes if choice else None,
            "vs_baseline": _ratio(chosen_summary, base),
            "vs_best": _ratio(chosen_summary, by_label.get(best)),
        },
        "noise": {
            "median_relative_spread": noise,
            "other_cpu_percent": _other_cpu(runs),
        },
    }
    result["acceptance"] = acceptance(result)
    return result


def _other_cpu(runs):
    values = sorted(
        run["cpu_percent"]["other"] for run in runs if not run.get("error") and run["cpu_percent"]
    )
    if not values:
        return None
    return {"median": values[len(values) // 2], "max": values[-1]}


def acceptance(result):
    """[{status, text}]: whether the chosen shape meets the targets against the baseline's
    and the best measured throughput (pass, short, or n/a when not measured)."""
    choice = result["choice"]
    lines = []
    targets = (
        (choice["vs_baseline"], TARGET_VS_BASELINE, "the baseline's throughput"),
        (choice["vs_best"], TARGET_VS_BEST, "the best measured throughput"),
    )
    for value, target, what in targets:
        if value is None:
            lines.append({"status": "n/a", "text": f"chosen shape vs {what}: not measured"})
            continue
        shown = f"{value:.2f}x" if target > 1 else f"{value:.0%}"
        goal = f">= {target:g}x" if target > 1 else f">= {target:.0%}"
        status = "pass" if value >= target else "short"
        lines.append({"status": status, "text": f"chosen shape: {shown} of {what} (target {goal})"})
    return lines


def write_json(result, path):
    Path(path).write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")


def load(path):
    """A result.json (or a run folder's); TuneError saying what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TuneError(f"{path}: not a readable result.json ({exc})") from None


# --- markdown -------------------------------------------------------------------------------
def _n(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def _med(spread, digits=0, scale=1):
    return "-" if not spread else _n(spread["median"] / scale, digits)


def _range(spread, digits=0):
    if not spread:
        return "-"
    if spread["n"] == 1:
        return "1 run"
    return f"{_n(spread['min'], digits)}-{_n(spread['max'], digits)}"


def _shape_words(chosen):
    p, t = chosen["processes"], chosen["threads"]
    return f"{p} process{'es' if p != 1 else ''} x {t} thread{'s' if t != 1 else ''}"


def _cpu(shape):
    parts = shape.get("cpu_percent") or {}
    return " / ".join(_med(parts.get(k)) for k in ("daemons", "postgres", "apache", "wrk", "other"))


def shapes_table(result):
    """The per-shape markdown table (chosen and baseline marked)."""
    base, chosen = result["meta"]["baseline"], (result["choice"]["chosen"] or {}).get("shape")
    header = [
        "shape",
        "mode (max_size)",
        "req/s median",
        "runs min-max",
        "x baseline",
        "p50 ms",
        "p99 ms",
        "RSS/process MiB",
        "backends",
        "CPU % daemons / PG / Apache / wrk / other",
        "verdict",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in result["shapes"]:
        name = f"`{s['shape']}`"
        if s["shape"] == chosen:
            name = f"**{name} chosen**"
        if s["shape"] == base:
            name += " (baseline)"
        ratio = "-" if s["vs_baseline"] is None else f"{s['vs_baseline']:.2f}x"
        cells = [
            name,
            f"{s['mode']} ({s['max_size']})",
            _med(s["rps"]),
            _range(s["rps"]),
            ratio,
            _med(s["p50_ms"], 1),
            _med(s["p99_ms"], 1),
            _med(s["rss_per_process_bytes"], 0, MIB),
            _med(s["backends_max"]),
            _cpu(s),
            s["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(result, level=1, chart="chart.png"):
    """report.md's text at heading ``level``."""
    h = "#" * level
    meta, choice = result["meta"], result["choice"]
    m, o = meta["machine"], meta["options"]
    out = [f"{h} Tuning run of {meta['date']}", ""]
    out += [
        f"`{meta['command']}` on {m['cpu']}, {meta['machine']['cores_used']} cores, "
        f"{m['memory_gb']} GiB, {m['os']}; Python {m['versions']['python']}, Django "
        f"{m['versions']['django']}, mod_wsgi {m['versions']['mod_wsgi']}, PostgreSQL "
        f"{meta['postgres']}, {meta['wrk']}; commit {m['commit']}.",
        "",
        f"Each run: a fresh mod_wsgi-express, {o['warmup']} s warm-up, {o['duration']} s of "
        f"wrk with {o['concurrency']} connections on {meta['mix']['paths']} URLs "
        f"({meta['mix']['source']}), {o['repeat']} interleaved round(s) per phase; "
        f"{meta['wall_seconds'] // 60} min {meta['wall_seconds'] % 60} s in all."
        + (" **Interrupted.**" if meta.get("interrupted") else ""),
        "",
        f"{h}# Chosen shape",
        "",
    ]
    if choice["chosen"]:
        c = choice["chosen"]
        out.append(
            f"**{_shape_words(c)}** (PERSISTENT_MODE={c['mode']}, max_size {c['max_size']}, "
            f"{c['connections']} PostgreSQL connections): {choice['reason']}."
        )
    else:
        out.append(f"No shape chosen: {choice['reason']}.")
    out.append("")
    for line in result["acceptance"]:
        out.append(f"- {line['status']}: {line['text']}")
    runner = runner_up(result)
    noise = result["noise"]
    spread = noise["median_relative_spread"]
    if runner:
        shape, gap = runner
        within = spread is not None and gap <= spread
        out.append(
            f"- runner-up: `{shape}`, {gap:.0%} behind"
            + (" (within the run-to-run spread: not told apart)" if within else "")
        )
    other = noise["other_cpu_percent"]
    out += [
        "- noise: runs of one shape differ by a median "
        + ("- (one run per shape)" if spread is None else f"{spread:.0%} (max-min over median)")
        + (
            ""
            if other is None
            else f"; other processes on the machine used a median {other['median']:.0f}% "
            f"(max {other['max']:.0f}%) of a core during the runs"
        ),
        f"- p99 bound: {_n(choice['p99_bound_ms'], 1)} ms ({choice['p99_bound_source']}); "
        f"memory limit {_n((choice['memory_limit_bytes'] or 0) / MIB)} MiB; "
        f"{meta['limits']['usable_connections']} usable PostgreSQL connections "
        f"for {meta['hosts']} host(s)",
        "",
        f"{h}# Every shape measured",
        "",
        *shapes_table(result),
        "",
        f"![throughput and p99 per shape]({chart})",
        "",
        f"{h}# Search",
        "",
    ]
    for phase in result["phases"]:
        out.append(f"- {phase['name']}: {', '.join(phase['shapes'])}")
    return "\n".join(out) + "\n"


def runner_up(result):
    """(shape, gap) of the fastest shape that met the objective after the chosen one."""
    chosen = result["choice"]["chosen"]
    if not chosen:
        return None
    ok = [s for s in result["shapes"] if s["verdict"] == "ok" and s["shape"] != chosen["shape"]]
    top = {s["shape"]: s for s in result["shapes"]}[chosen["shape"]]["rps"]["median"]
    if not ok or not top:
        return None
    best = max(ok, key=lambda s: s["rps"]["median"])
    return best["shape"], 1 - best["rps"]["median"] / top


def write_markdown(result, path):
    Path(path).write_text(render_markdown(result))


# --- docs/tuning.md -------------------------------------------------------------------------
def docs_section(result, folder, docs_path):
    """The generated block of docs/tuning.md for the run in ``folder``."""
    chart = Path(folder).resolve() / "chart.png"
    try:
        link = chart.relative_to(Path(docs_path).resolve().parent)
    except ValueError:
        link = chart
    body = render_markdown(result, level=3, chart=str(link))
    source = Path(folder).resolve() / "result.json"
    try:
        source = source.relative_to(Path(docs_path).resolve().parents[1])
    except ValueError:
        pass
    note = (
        f"<!-- generated from {source} by python -m bench.tune --docs-from; do not edit by hand -->"
    )
    return f"{DOCS_BEGIN}\n{note}\n\n{body}\n{DOCS_END}"


def update_docs(result, folder, docs_path):
    """Rewrite the generated block of ``docs_path`` from ``result`` (TuneError without one)."""
    text = Path(docs_path).read_text()
    pattern = re.compile(re.escape(DOCS_BEGIN) + ".*?" + re.escape(DOCS_END), re.S)
    if not pattern.search(text):
        raise TuneError(f"{docs_path}: no {DOCS_BEGIN} ... {DOCS_END} block to rewrite")
    section = docs_section(result, folder, docs_path)
    Path(docs_path).write_text(pattern.sub(lambda _: section, text, count=1))
