"""The issues' targets, checked against a run and printed as pass/short lines.

They are goals for the figures, not unit tests: a short line does not fail the bench.
"persistent_backend" in a target means the mode the variant pairs with (what mode
"auto" picks there, and what apache_conf's config for that shape uses): ``process`` for
threads=1, ``pool`` otherwise. Every ratio is paired within rounds. A target whose
configurations were not both run is not reported: it never passes by absence.
"""

from bench.configs import (
    CONFIGS_BY_NAME,
    CONTROL,
    LEND_TRANSACTION,
    NO_METRICS,
    PGBOUNCER_PERSISTENT,
    PREPARED,
    REFERENCE,
    ROUTE_TCP,
    UPPER_BOUND,
    UPPER_BOUND_PSYCOPG3,
    Variant,
    persistent_name,
)
from bench.summary import find_row, index_runs, paired_ratio

SPEEDUP = 5.0  # persistent_backend vs connect-per-request, prefork, /items/<id>/
NEAR = 0.97  # any persistent mode (and lending per transaction) vs Django's persistent ones
MATCH = 0.99  # persistent_backend (auto) vs Django's persistent connections: the median
MATCH_LOWEST = 0.95  # ... and the lowest round
PREPARED_GAIN = 1.05  # prepared statements vs Django's persistent connections on psycopg 3
METRICS_RATIO = 0.99  # the dashboard's metrics middleware on vs off
EXTRA_TOLERANCE = 0.02  # statements/request: in-flight requests at the window's edges
# Lending per transaction: the share of Django's backends it may hold (many threads: less).
LEND_HELD, LEND_HELD_WIDE, WIDE_THREADS = 0.5, 0.25, 16
FINE = 3  # decimals of the ratios held to targets within a few percent of 1
PASS, SHORT, NA = "pass", "short", "n/a"


def _ratio_text(ratio, unit="x", digits=2):
    if ratio["n"] == 1:
        return f"{ratio['median']:.{digits}f}{unit} (1 round)"
    return (
        f"{ratio['median']:.{digits}f}{unit} (median of {ratio['n']} rounds, "
        f"{ratio['min']:.{digits}f}-{ratio['max']:.{digits}f})"
    )


def _line(status, variant, text, value=None, ratio=None):
    return {"status": status, "variant": variant, "text": text, "value": value, "ratio": ratio}


def _items_ratio(table, variant, top, bottom, metric="rps"):
    return paired_ratio(table, (variant, top, "items"), (variant, bottom, "items"), metric)


def _ratio_target(table, variant, top, bottom, minimum, what, digits=2):
    ratio = _items_ratio(table, variant, top, bottom)
    if ratio is None:
        return None
    status = PASS if ratio["median"] >= minimum else SHORT
    text = f"{what}: {_ratio_text(ratio, digits=digits)}, target >= {minimum:g}x"
    return _line(status, variant, text, ratio["median"], ratio)


def reference_for(config):
    """Django's persistent connections on the same driver as ``config``."""
    return UPPER_BOUND_PSYCOPG3 if config.psycopg == "3" else UPPER_BOUND


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
        lines.append(_control_line(table, name))
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
        lines.append(_match_line(table, name, ours, tag))
        for other in ("django-health-checks", "django-pool"):
            lines.append(_ratio_target(table, name, ours, other, 1.0, f"{tag} not behind {other}"))
        if variant.threads == 1:
            lines.extend(_every_mode_lines(table, rows, name, ours))
        else:
            lines.append(_lend_line(table, rows, variant))
        lines.append(
            _ratio_target(
                table,
                name,
                PREPARED,
                UPPER_BOUND_PSYCOPG3,
                PREPARED_GAIN,
                f"{PREPARED} ({mode}) vs {UPPER_BOUND_PSYCOPG3}",
                FINE,
            )
        )
        lines.extend(_statement_lines(rows, name))
        if variant.threads > 1:
            lines.append(_pool_backends_line(table, rows, name))
        lines.append(_metrics_line(table, meta, name, ours, tag))
        lines.append(_pgbouncer_line(table, rows, name, ours))
    return [line for line in lines if line is not None]


def _control_line(table, variant):
    """Django's persistent connections against themselves: the ratio identical code gets
    in this run, so a target can be read against what the host alone does to a ratio."""
    ratio = _items_ratio(table, variant, CONTROL, UPPER_BOUND)
    if ratio is None:
        return None
    text = (
        f"control: {CONTROL} vs {UPPER_BOUND}, identical code: "
        f"{_ratio_text(ratio, digits=FINE)}: what the host alone did to a ratio in this run"
    )
    return _line("info", variant, text, ratio["median"], ratio)


def _match_line(table, variant, ours, tag):
    """persistent_backend (auto) vs Django's persistent connections: median and lowest round."""
    ratio = _items_ratio(table, variant, ours, UPPER_BOUND)
    if ratio is None:
        return None
    ok = ratio["median"] >= MATCH and ratio["min"] >= MATCH_LOWEST
    text = (
        f"{tag} vs {UPPER_BOUND}: {_ratio_text(ratio, digits=FINE)}, target median >= {MATCH:g}x "
        f"and lowest round >= {MATCH_LOWEST:g}x"
    )
    return _line(PASS if ok else SHORT, variant, text, ratio["median"], ratio)


def _every_mode_lines(table, rows, variant, ours):
    """Prefork: every other persistent_backend mode against Django's persistent connections
    on its own driver (the paired mode has the stricter line above)."""
    lines = []
    for row in rows:
        if row["variant"] != variant or row["page"] != "items":
            continue
        config = CONFIGS_BY_NAME.get(row["config"])
        if (
            config is None
            or config.engine != "persistent_backend"
            or config.route != ROUTE_TCP
            or not config.metrics
            or config.name == ours
        ):
            continue
        bottom = reference_for(config)
        what = f"{config.name} vs {bottom}"
        lines.append(_ratio_target(table, variant, config.name, bottom, NEAR, what, FINE))
    return lines


def _held(row, key, digits=0):
    spread = row and row.get(key)
    return "-" if not spread else f"{spread['median']:.{digits}f}"


def _lend_line(table, rows, variant):
    """Lending per transaction, threaded: Django's throughput on a fraction of its backends."""
    name = variant.name
    speed = _items_ratio(table, name, LEND_TRANSACTION, UPPER_BOUND)
    held = _items_ratio(table, name, LEND_TRANSACTION, UPPER_BOUND, "backends_max")
    if speed is None or held is None:
        return None
    share = LEND_HELD_WIDE if variant.threads >= WIDE_THREADS else LEND_HELD
    ok = speed["median"] >= NEAR and held["median"] <= share
    lend, upper = find_row(rows, name, LEND_TRANSACTION), find_row(rows, name, UPPER_BOUND)
    text = (
        f"{LEND_TRANSACTION} vs {UPPER_BOUND} on /items/<id>/: {_ratio_text(speed, digits=FINE)} "
        f"throughput (target >= {NEAR:g}x) holding {_ratio_text(held)} the backends "
        f"(target <= {share:g}x; max {_held(lend, 'backends_max')} vs "
        f"{_held(upper, 'backends_max')}, mean {_held(lend, 'backends_mean', 1)} vs "
        f"{_held(upper, 'backends_mean', 1)})"
    )
    return _line(PASS if ok else SHORT, name, text, held["median"], speed)


def _pgbouncer_line(table, rows, variant, ours):
    """What PgBouncer costs and saves: throughput against the paired mode, backends held."""
    what = f"{PGBOUNCER_PERSISTENT} on /items/<id>/"
    row = find_row(rows, variant, PGBOUNCER_PERSISTENT)
    if not row or not row["rps"]:
        return None
    ratio = _items_ratio(table, variant, PGBOUNCER_PERSISTENT, ours)
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
    ratio = _items_ratio(table, variant, persistent_name("pool"), UPPER_BOUND)
    if not (pool and upper and pool["backends_max"] and upper["backends_max"] and ratio):
        return None
    held, theirs = pool["backends_max"]["median"], upper["backends_max"]["median"]
    # With lend: "request" a request keeps its connection to its end, so the pool holds
    # one per request in flight by design; the backends target is lend-transaction's.
    text = (
        f"{what}: {held:g} vs {theirs:g} held at {_ratio_text(ratio)} throughput "
        '(lend: "request" holds one per request in flight; see lend-transaction)'
    )
    return _line("info", variant, text, held / theirs if theirs else None, ratio)


def _metrics_line(table, meta, variant, ours, tag):
    what = f"dashboard metrics middleware on vs off, {tag}, /items/<id>/"
    if not meta.get("metrics_switch_effective", False):
        return _line(
            NA,
            variant,
            f"{what}: {meta.get('metrics_switch', 'the switch')}=0 changes nothing in "
            "MIDDLEWARE, so there is nothing to compare",
        )
    return _ratio_target(table, variant, ours, NO_METRICS, METRICS_RATIO, what, FINE)


def format_lines(lines):
    return [f"{line['status']:<5} [{line['variant']}] {line['text']}" for line in lines]
