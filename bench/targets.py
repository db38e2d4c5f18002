"""The issue's targets, checked against a run and printed as pass/short lines.

They are goals for the figures, not unit tests: a short line does not fail the bench.
"persistent_backend" in a target means the mode the variant pairs with (what mode
"auto" picks there, and what apache_conf's config for that shape uses): ``process`` for
threads=1, ``pool`` otherwise.
"""

from bench.configs import PGBOUNCER_PERSISTENT, REFERENCE, UPPER_BOUND, Variant, persistent_name
from bench.summary import find_row, index_runs, paired_ratio

SPEEDUP = 5.0  # persistent_backend vs connect-per-request, prefork, /items/<id>/
NEAR = 0.97  # persistent_backend vs the zero-connect-cost upper bound
EXTRA_TOLERANCE = 0.02  # statements/request: in-flight requests at the window's edges
METRICS_COST = 0.01
PASS, SHORT, NA = "pass", "short", "n/a"


def _ratio_text(ratio, unit="x"):
    if ratio["n"] == 1:
        return f"{ratio['median']:.2f}{unit} (1 round)"
    return (
        f"{ratio['median']:.2f}{unit} (median of {ratio['n']} rounds, "
        f"{ratio['min']:.2f}-{ratio['max']:.2f})"
    )


def _line(status, variant, text, value=None, ratio=None):
    return {"status": status, "variant": variant, "text": text, "value": value, "ratio": ratio}


def _ratio_target(table, variant, top, bottom, minimum, what):
    ratio = paired_ratio(table, (variant, top, "items"), (variant, bottom, "items"))
    if ratio is None:
        return _line(NA, variant, f"{what}: not measured ({top} or {bottom} missing)")
    status = PASS if ratio["median"] >= minimum else SHORT
    text = f"{what}: {_ratio_text(ratio)}, target >= {minimum:g}x"
    return _line(status, variant, text, ratio["median"], ratio)


def evaluate(results):
    """Target lines for ``results`` (the dict written to results.json)."""
    table = index_runs(results["runs"])
    rows = results["summary"]
    meta = results["meta"]
    lines = []
    for spec in meta["variants"]:
        variant = Variant(spec["name"], spec["processes"], spec["threads"])
        name = variant.name
        mode = variant.paired_mode
        ours = persistent_name(mode)
        tag = f"persistent_backend ({mode})"
        if variant.threads == 1:
            lines.append(
                _ratio_target(
                    table,
                    name,
                    ours,
                    REFERENCE,
                    SPEEDUP,
                    f"{tag} vs {REFERENCE} on /items/<id>/",
                )
            )
        lines.append(_ratio_target(table, name, ours, UPPER_BOUND, NEAR, f"{tag} vs {UPPER_BOUND}"))
        for other in ("django-health-checks", "django-pool"):
            lines.append(_ratio_target(table, name, ours, other, 1.0, f"{tag} not behind {other}"))
        lines.extend(_statement_lines(rows, name))
        if variant.threads > 1:
            lines.append(_pool_backends_line(table, rows, name))
        lines.append(_metrics_line(table, meta, name, ours, tag))
        lines.append(_pgbouncer_line(table, rows, name, ours))
    return lines


def _pgbouncer_line(table, rows, variant, ours):
    """What PgBouncer costs and saves: throughput against the paired mode, backends held."""
    what = f"{PGBOUNCER_PERSISTENT} on /items/<id>/"
    row = find_row(rows, variant, PGBOUNCER_PERSISTENT)
    if not row or not row["rps"]:
        return _line(NA, variant, f"{what}: not measured")
    ratio = paired_ratio(table, (variant, PGBOUNCER_PERSISTENT, "items"), (variant, ours, "items"))
    held = row["backends_max"]["median"] if row["backends_max"] else None
    mine = find_row(rows, variant, ours)
    theirs = mine["backends_max"]["median"] if mine and mine["backends_max"] else None
    versus = f" ({_ratio_text(ratio)} of {ours})" if ratio else ""
    text = (
        f"{what}: {row['rps']['median']:.0f} req/s{versus}; PostgreSQL backends held "
        f"{'-' if held is None else f'{held:g}'} (PgBouncer's pool) vs "
        f"{'-' if theirs is None else f'{theirs:g}'} held directly by {ours}"
    )
    return _line("info", variant, text, ratio["median"] if ratio else None, ratio)


def _statement_lines(rows, variant):
    lines = []
    for row in rows:
        if row["variant"] != variant or row["page"] != "items":
            continue
        extra = row["extra_statements_per_request"]
        if not row["config"].startswith("persistent-") or extra is None:
            continue
        status = PASS if extra["median"] <= EXTRA_TOLERANCE else SHORT
        per_request = row["statements_per_request"]["median"]
        text = (
            f"{row['config']} statements per request on /items/<id>/: {per_request:.2f} "
            f"= page's own + {extra['median']:.2f}, target + 0"
        )
        lines.append(_line(status, variant, text, extra["median"]))
    checks = find_row(rows, variant, "django-health-checks")
    if checks and checks["extra_statements_per_request"]:
        extra = checks["extra_statements_per_request"]["median"]
        lines.append(
            _line(
                "info",
                variant,
                f"django-health-checks adds {extra:.2f} statement(s) per request (SELECT 1)",
                extra,
            )
        )
    return lines


def _pool_backends_line(table, rows, variant):
    what = f"persistent_backend (pool) backends vs {UPPER_BOUND}, threaded, /items/<id>/"
    pool = find_row(rows, variant, persistent_name("pool"))
    upper = find_row(rows, variant, UPPER_BOUND)
    ratio = paired_ratio(
        table, (variant, persistent_name("pool"), "items"), (variant, UPPER_BOUND, "items")
    )
    if not (pool and upper and pool["backends_max"] and upper["backends_max"] and ratio):
        return _line(NA, variant, f"{what}: not measured")
    held, theirs = pool["backends_max"]["median"], upper["backends_max"]["median"]
    ok = held <= theirs / 2 and ratio["median"] >= NEAR
    text = (
        f"{what}: {held:g} vs {theirs:g} held (target <= half) at {_ratio_text(ratio)} "
        f"throughput (target >= {NEAR:g}x)"
    )
    return _line(PASS if ok else SHORT, variant, text, held / theirs if theirs else None, ratio)


def _metrics_line(table, meta, variant, ours, tag):
    what = f"dashboard metrics middleware cost, {tag}, /items/<id>/"
    if not meta.get("metrics_switch_effective", False):
        return _line(
            NA,
            variant,
            f"{what}: {meta.get('metrics_switch', 'the switch')}=0 changes nothing in "
            "MIDDLEWARE, so there is nothing to compare",
        )
    ratio = paired_ratio(
        table, (variant, ours, "items"), (variant, "persistent-no-metrics", "items")
    )
    if ratio is None:
        return _line(NA, variant, f"{what}: not measured")
    cost = 1 - ratio["median"]
    status = PASS if cost <= METRICS_COST else SHORT
    text = (
        f"{what}: {cost * 100:+.1f}% (with/without {_ratio_text(ratio)}), "
        f"target <= {METRICS_COST * 100:g}%"
    )
    return _line(status, variant, text, cost, ratio)


def format_lines(lines):
    return [f"{line['status']:<5} [{line['variant']}] {line['text']}" for line in lines]
