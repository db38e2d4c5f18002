"""Medians over rounds, and ratios paired round by round.

Rounds are interleaved (A B C, B C A, ...), so a ratio is taken within each round (the
two runs minutes apart, not half an hour) and then summarised by its median and its
min-max over rounds.
"""

from apache_conf.figures import load_figures, spread
from bench.configs import REFERENCE


def index_runs(runs):
    """{(variant, config, page): {round: run}} for the runs that produced figures."""
    table = {}
    for run in runs:
        if run.get("error"):
            continue
        table.setdefault((run["variant"], run["config"], run["page"]), {})[run["round"]] = run
    return table


def paired_ratio(table, numerator, denominator, metric="rps"):
    """Per-round ratio of two (variant, config, page) keys, summarised over rounds."""
    top, bottom = table.get(numerator, {}), table.get(denominator, {})
    ratios = [
        top[r][metric] / bottom[r][metric]
        for r in sorted(top.keys() & bottom.keys())
        if bottom[r][metric]
    ]
    return spread(ratios)


def summarise(runs, variants, configs, page_keys):
    """One row per (variant, config, page), in matrix order."""
    table = index_runs(runs)
    rows = []
    for variant in variants:
        for config in configs:
            for page in page_keys:
                key = (variant, config, page)
                mine = [run for run in runs if (run["variant"], run["config"], run["page"]) == key]
                done = list(table.get(key, {}).values())
                row = {
                    "variant": variant,
                    "config": config,
                    "page": page,
                    "rounds": len(mine),
                    "failed": sum(1 for run in mine if run.get("error")),
                    "errors": sorted(
                        {run["error"].splitlines()[0] for run in mine if run.get("error")}
                    ),
                    **load_figures(done),
                    "backends_mid": spread(run["backends_mid"] for run in done),
                    "backends_max": spread(run["backends_max"] for run in done),
                    "backends_mean": spread(run["backends_mean"] for run in done),
                    "statements_per_request": spread(run["statements_per_request"] for run in done),
                    "extra_statements_per_request": spread(
                        run["extra_statements_per_request"] for run in done
                    ),
                    "vs_reference": paired_ratio(table, key, (variant, REFERENCE, page)),
                    "vs_ceiling": (
                        paired_ratio(table, key, (variant, config, "nodb"))
                        if page != "nodb"
                        else None
                    ),
                }
                rows.append(row)
    return rows


def find_row(rows, variant, config, page="items"):
    """The summary row of (variant, config, page), None if it was not run."""
    for row in rows:
        if (row["variant"], row["config"], row["page"]) == (variant, config, page):
            return row
    return None
