"""results.json, results.md (tables and target lines), results.png.

Everything here renders from the results dict alone, so a saved run can be rendered
again (``bench/published.py`` renders the docs' performance page from the published one).
"""

import json
from pathlib import Path

from bench.configs import REFERENCE
from bench.targets import format_lines

PAGE_TITLES = {"items": "/items/<id>/", "nodb": "/nodb/"}


# -- numbers -------------------------------------------------------------------------
def _num(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def _med(spread, digits=0):
    return "-" if not spread else _num(spread["median"], digits)


def _range(spread, digits=0):
    if not spread:
        return "-"
    if spread["n"] == 1:
        return _num(spread["median"], digits)
    return f"{_num(spread['min'], digits)}-{_num(spread['max'], digits)}"


def _ratio(spread):
    if not spread:
        return "-"
    text = f"{spread['median']:.2f}x"
    if spread["n"] > 1:
        text += f" ({spread['min']:.2f}-{spread['max']:.2f})"
    return text


def shape_text(spec):
    """ "P processes x T threads" of a variant spec."""
    processes, threads = spec["processes"], spec["threads"]
    return (
        f"{processes} process{'es' if processes != 1 else ''} x "
        f"{threads} thread{'s' if threads != 1 else ''}"
    )


def _percent(spread):
    return "-" if not spread else f"{spread['median'] * 100:.0f}%"


def _backends(row):
    if not row["backends_mid"]:
        return "-"
    return f"{_med(row['backends_mid'])} (max {_med(row['backends_max'])})"


def _statements(row):
    total, extra = row["statements_per_request"], row["extra_statements_per_request"]
    if not total:
        return "-"
    return f"{total['median']:.2f} ({extra['median']:+.2f})"


# -- markdown ------------------------------------------------------------------------
def _row_for(rows, variant, config, page):
    for row in rows:
        if (row["variant"], row["config"], row["page"]) == (variant, config, page):
            return row
    return None


def variant_table(results, variant):
    """The markdown table of one variant: one line per configuration."""
    rows = results["summary"]
    pages = results["meta"]["options"]["pages"]
    main = "items" if "items" in pages else pages[0]
    title = PAGE_TITLES[main]
    header = [
        "configuration",
        f"{title} req/s",
        "rounds min-max",
        f"x {REFERENCE}",
        "of /nodb/",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "backends",
        "statements/req (extra)",
    ]
    if "nodb" in pages and main != "nodb":
        header.append("/nodb/ req/s")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for config in results["meta"]["configs_run"]:
        row = _row_for(rows, variant, config["name"], main)
        if row is None:
            continue
        name = config["label"].get(variant, config["name"])
        if row["failed"] and not row["rps"]:
            cells = [f"`{name}`", "failed"] + ["-"] * (len(header) - 2)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells = [
            f"`{name}`",
            _med(row["rps"]),
            _range(row["rps"]),
            _ratio(row["vs_reference"]),
            _percent(row["vs_ceiling"]),
            _med(row["p50_ms"], 1),
            _med(row["p99_ms"], 1),
            str(row["non2xx"] + row["socket_errors"]),
            _backends(row),
            _statements(row),
        ]
        if "nodb" in pages and main != "nodb":
            nodb = _row_for(rows, variant, config["name"], "nodb")
            cells.append(_med(nodb["rps"]) if nodb else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_run(results):
    """One paragraph on how the run was made: machine, versions, options."""
    meta = results["meta"]
    machine, opts = meta["machine"], meta["options"]
    versions = machine["versions"]
    return (
        f"Measured on {meta['date']} on {machine['cpu']} ({machine['cores']} cores, "
        f"{machine['memory_gb']:g} GB RAM, {machine['os']}, load average "
        f"{_load(machine)} before the run), everything on one host: "
        f"PostgreSQL {meta['postgres']}, Python {versions['python']}, Django "
        f"{versions['django']}, psycopg2 {versions['psycopg2']}, mod_wsgi "
        f"{versions['mod_wsgi']}, {meta['pgbouncer']}, {meta['wrk']}; commit "
        f"{machine['commit'] or 'unknown'}. Command: `{meta['command']}`"
        f"{' (quick run: figures are indicative only)' if opts['quick'] else ''}.\n\n"
        f"Load: wrk, {opts['concurrency']} connections, {opts['duration']} s per run after "
        f"{opts['warmup']} s of warm-up, {opts['repeat']} interleaved round(s), against "
        "`mod_wsgi-express start-server` with its defaults (plus `--server-status`, whose "
        "request count divides the statements); figures are "
        "medians over rounds (min-max beside them). Connections use TCP with scram-sha-256 "
        "unless the name says otherwise. *x connect-per-request* and *of /nodb/* are "
        "ratios taken within each round; *backends*: the site's PostgreSQL sessions "
        "sampled from `pg_stat_activity` mid-run (max over the run); *statements/req*: "
        "server-side statements per request from `pg_stat_statements` deltas (in brackets, "
        "beyond the page's own "
        f"{meta['page_queries'].get('items', '?')} queries)."
    )


def _load(machine):
    """The 1/5/15-minute load averages (a shared machine's figures depend on them)."""
    load = machine.get("load_before")
    return " / ".join(f"{value:.2f}" for value in load) if load else "unknown"


def render_markdown(results, level=2):
    """The body of results.md (and of docs/performance.md's section), headings from ``level``."""
    h = "#" * level
    parts = [describe_run(results)]
    for spec in results["meta"]["variants"]:
        parts.append(f"{h} {spec['name']}: {shape_text(spec)}")
        parts.append(variant_table(results, spec["name"]))
    parts.append(f"{h} Configurations")
    parts.append(
        "\n".join(
            f"- `{config['name']}`: {config['summary']}"
            for config in results["meta"]["configs_run"]
        )
    )
    parts.append(f"{h} Targets")
    parts.append("```\n" + "\n".join(format_lines(results["targets"])) + "\n```")
    failed = [run for run in results["runs"] if run.get("error")]
    if failed:
        parts.append(f"{h} Failed runs")
        parts.append(
            "\n".join(
                f"- round {run['round']} {run['variant']} `{run['config']}` {run['path']}: "
                f"{run['error'].splitlines()[0][:300]}"
                for run in failed
            )
        )
    if results["meta"].get("skipped"):
        parts.append(f"{h} Skipped")
        parts.append("\n".join(f"- {text}" for text in results["meta"]["skipped"]))
    profiled = [run for run in results["runs"] if run.get("profile", {}).get("samples")]
    if profiled:
        parts.append(
            f"{h} Where the time goes (py-spy, wall clock, share of in-request samples, self)"
        )
        lines = []
        for run in profiled:
            top = ", ".join(
                f"`{frame}` {share * 100:.0f}%" for frame, share in run["profile"]["self"][:6]
            )
            lines.append(
                f"- round {run['round']} {run['variant']} `{run['config']}` {run['path']}: {top}"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write_markdown(results, path):
    """results.md: the chart and the rendered tables."""
    Path(path).write_text(
        "# Benchmark results\n\n![requests/s per configuration](results.png)\n\n"
        + render_markdown(results, level=2)
    )


def write_json(results, path):
    """The results as indented JSON."""
    Path(path).write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")


def load_results(directory):
    """results.json of a results folder."""
    return json.loads((Path(directory) / "results.json").read_text())


# -- chart ---------------------------------------------------------------------------
def write_chart(results, path):
    """Requests/s per configuration (median, error bars min-max), a panel per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results["meta"]["variants"]
    configs = results["meta"]["configs_run"]
    pages = results["meta"]["options"]["pages"]
    colours = {"items": "#3b6ea5", "nodb": "#c8c8c8"}
    fig, axes = plt.subplots(
        len(variants),
        1,
        figsize=(max(8, 1.0 * len(configs) + 2), 4.2 * len(variants)),
        squeeze=False,
    )
    width = 0.8 / len(pages)
    for ax, spec in zip(axes[:, 0], variants, strict=True):
        for offset, page in enumerate(pages):
            xs, heights, low, high = [], [], [], []
            for i, config in enumerate(configs):
                row = _row_for(results["summary"], spec["name"], config["name"], page)
                if not row or not row["rps"]:
                    continue
                rps = row["rps"]
                xs.append(i + (offset - (len(pages) - 1) / 2) * width)
                heights.append(rps["median"])
                low.append(rps["median"] - rps["min"])
                high.append(rps["max"] - rps["median"])
            ax.bar(
                xs,
                heights,
                width,
                yerr=[low, high],
                capsize=3,
                color=colours.get(page, "#888"),
                label=PAGE_TITLES[page],
            )
            for x, height, up in zip(xs, heights, high, strict=True):
                ax.annotate(
                    f"{height:,.0f}", (x, height + up), ha="center", va="bottom", fontsize=7
                )
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels(
            [c["label"].get(spec["name"], c["name"]) for c in configs],
            rotation=25,
            ha="right",
            fontsize=8,
        )
        ax.set_ylabel("requests/s")
        ax.set_title(
            f"{spec['name']}: {shape_text(spec)} "
            f"(median of {results['meta']['options']['repeat']} round(s), bars: min-max)",
            fontsize=10,
        )
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    machine = results["meta"]["machine"]
    fig.suptitle(
        f"{machine['cpu']}, {machine['cores']} cores - {results['meta']['date']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
