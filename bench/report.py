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


def shape_text(spec, concurrency=None):
    """The shape in words; the wrk connections too when the variant has its own."""
    processes, threads = spec["processes"], spec["threads"]
    text = (
        f"{processes} process{'es' if processes != 1 else ''} x "
        f"{threads} thread{'s' if threads != 1 else ''}"
    )
    clients = spec.get("clients")
    if clients and clients != concurrency:
        text += f", {clients} wrk connections"
    return text


def _percent(spread):
    return "-" if not spread else f"{spread['median'] * 100:.0f}%"


def _backends(row):
    """Mean over the run (max over the run); runs saved before means were sampled show the
    sample nearest the middle instead."""
    if row.get("backends_mean"):
        return f"{_med(row['backends_mean'], 1)} (max {_med(row['backends_max'])})"
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
    """The markdown table of one variant: one line per configuration.

    The ratio to connect-per-request and to /nodb/ only when the run measured them.
    """
    rows = results["summary"]
    pages = results["meta"]["options"]["pages"]
    main = "items" if "items" in pages else pages[0]
    ceiling = "nodb" in pages and main != "nodb"
    referenced = any(config["name"] == REFERENCE for config in results["meta"]["configs_run"])

    def nodb_rps(row):
        nodb = _row_for(rows, variant, row["config"], "nodb")
        return _med(nodb["rps"]) if nodb else "-"

    columns = [
        (f"{PAGE_TITLES[main]} req/s", lambda row: _med(row["rps"]), True),
        ("rounds min-max", lambda row: _range(row["rps"]), True),
        (f"x {REFERENCE}", lambda row: _ratio(row["vs_reference"]), referenced),
        ("of /nodb/", lambda row: _percent(row["vs_ceiling"]), ceiling),
        ("p50 ms", lambda row: _med(row["p50_ms"], 1), True),
        ("p99 ms", lambda row: _med(row["p99_ms"], 1), True),
        ("non-2xx", lambda row: str(row["non2xx"] + row["socket_errors"]), True),
        ("backends", _backends, True),
        ("statements/req (extra)", _statements, True),
        ("/nodb/ req/s", nodb_rps, ceiling),
    ]
    columns = [(title, cell) for title, cell, shown in columns if shown]
    header = ["configuration", *(title for title, _ in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for config in results["meta"]["configs_run"]:
        row = _row_for(rows, variant, config["name"], main)
        if row is None:
            continue
        name = config["label"].get(variant, config["name"])
        if row["failed"] and not row["rps"]:
            cells = [f"`{name}`", "failed"] + ["-"] * (len(header) - 2)
        else:
            cells = [f"`{name}`", *(cell(row) for _, cell in columns)]
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
        f"{opts['warmup']} s of warm-up, {opts['repeat']} interleaved round(s){_sliced(opts)}, "
        f"against `mod_wsgi-express start-server` with {_front_end(meta)} (plus `--server-status`, "
        "whose request count divides the statements); figures are "
        "medians over rounds (min-max beside them). Connections use TCP with scram-sha-256 "
        "unless the name says otherwise. *x connect-per-request* and *of /nodb/* are "
        "ratios taken within each round; *backends*: the site's PostgreSQL sessions "
        f"sampled from `pg_stat_activity` {_sampled(results)}; *statements/req*: "
        "server-side statements per request from `pg_stat_statements` deltas (in brackets, "
        "beyond the page's own "
        f"{meta['page_queries'].get('items', '?')} queries)."
    )


def _sliced(opts):
    """How a run was measured when in slices (results saved before --slices: not)."""
    slices = opts.get("slices", 1)
    if slices <= 1:
        return ""
    return (
        f"; each run in {slices} slices of {opts['duration'] // slices} s, every site of a "
        "variant up at once and taking turns through the round (latency: medians over the "
        "slices)"
    )


def _front_end(meta):
    """mod_wsgi-express's options the sites ran with (results saved before: its defaults)."""
    args = meta.get("front_end_args")
    if not args:
        return "its defaults"
    return f"every Apache child started and kept (`{' '.join(args)}`)"


def _sampled(results):
    """How the backends column reads (runs saved before means were sampled: mid-run)."""
    if any(row.get("backends_mean") for row in results["summary"]):
        return "through the run: mean (max)"
    return "mid-run (max over the run)"


def _load(machine):
    """The 1/5/15-minute load averages (a shared machine's figures depend on them)."""
    load = machine.get("load_before")
    return " / ".join(f"{value:.2f}" for value in load) if load else "unknown"


def render_markdown(results, level=2):
    """The body of results.md (and of docs/performance.md's section), headings from ``level``."""
    h = "#" * level
    parts = [describe_run(results)]
    for spec in results["meta"]["variants"]:
        concurrency = results["meta"]["options"]["concurrency"]
        parts.append(f"{h} {spec['name']}: {shape_text(spec, concurrency)}")
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
            f"{spec['name']}: {shape_text(spec, results['meta']['options']['concurrency'])} "
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
