"""The bench's arithmetic, without servers: parsing, pairing rounds, targets, profiles."""

import pytest

from bench.configs import CONFIGS, NAMED_VARIANTS, Variant, parse_variant, select_configs
from bench.database import statements_delta
from bench.load import parse_output, wrk_command
from bench.profiling import summarise_collapsed
from bench.summary import summarise
from bench.targets import evaluate


def test_variants_parse_names_and_shapes():
    assert parse_variant("prefork") == Variant("prefork", 2, 1)
    assert parse_variant("threaded") == Variant("threaded", 1, 8)
    assert parse_variant("4x2") == Variant("4x2", 4, 2)
    assert parse_variant("big=3x5") == Variant("big", 3, 5)
    assert NAMED_VARIANTS["prefork"].paired_mode == "process"
    assert NAMED_VARIANTS["threaded"].paired_mode == "pool"
    for bad in ["", "2x0", "x2", "fast", "A=1x1"]:
        with pytest.raises(ValueError):
            parse_variant(bad)


def test_every_configuration_sets_every_database_knob():
    prefork = NAMED_VARIANTS["prefork"]
    keys = {frozenset(config.env(prefork)) for config in CONFIGS}
    assert len(keys) == 1
    by_name = {config.name: config.env(prefork) for config in CONFIGS}
    assert by_name["connect-per-request"]["DJANGO_CONN_MAX_AGE"] == "0"
    assert by_name["django-persistent"]["DJANGO_CONN_MAX_AGE"] == "none"
    assert by_name["django-pool"]["DJANGO_PSYCOPG"] == "3"
    assert by_name["persistent-pool"]["PERSISTENT_MODE"] == "pool"
    threaded = NAMED_VARIANTS["threaded"]
    no_metrics = select_configs(["persistent-no-metrics"])[0]
    assert no_metrics.env(prefork)["PERSISTENT_MODE"] == "process"
    assert no_metrics.env(threaded)["PERSISTENT_MODE"] == "pool"
    with pytest.raises(ValueError, match="unknown configuration"):
        select_configs(["nope"])


def test_wrk_output_is_parsed():
    out = (
        "Running 1s test @ http://127.0.0.1:1/nodb/\n"
        'BENCH_RESULT {"requests": 500, "duration_us": 2000000, "bytes": 10, "ok": 498, '
        '"non2xx": 2, "statuses": {"503": 2}, "errors": {"connect": 0, "read": 1, '
        '"write": 0, "timeout": 0}, "latency_us": {"mean": 1500.0, "max": 9000, '
        '"p50": 1200, "p90": 2000, "p99": 8000}}\n'
    )
    result = parse_output(out)
    assert result["rps"] == 250 and result["socket_errors"] == 1
    assert result["latency_ms"]["p99"] == 8 and result["statuses"] == {"503": 2}
    with pytest.raises(ValueError):
        parse_output("no marker")
    cmd = wrk_command("http://x/", 3, 2, threads=4)
    assert cmd[cmd.index("--threads") + 1] == "2" and "3s" in cmd


def test_statement_deltas_count_only_new_calls():
    before = {1: (10, "SELECT a"), 2: (5, "SELECT 1")}
    after = {1: (30, "SELECT a"), 2: (5, "SELECT 1"), 3: (4, "SET x")}
    assert statements_delta(before, after) == (24, [(20, "SELECT a"), (4, "SET x")])


def _run(round_no, config, page, rps, variant="prefork", **extra):
    return {
        "round": round_no,
        "variant": variant,
        "config": config,
        "page": page,
        "error": None,
        "rps": rps,
        "latency_ms": {"p50": 1.0, "p99": 2.0},
        "ok": 10,
        "non2xx": 0,
        "socket_errors": 0,
        "backends_mid": extra.get("backends", 2),
        "backends_max": extra.get("backends", 2),
        "statements_per_request": extra.get("statements", 4.0),
        "extra_statements_per_request": extra.get("statements", 4.0) - 4,
    }


def test_ratios_are_paired_within_rounds_and_targets_read_them():
    runs = []
    for r, drift in [(1, 1.0), (2, 2.0), (3, 1.5)]:  # the machine drifts between rounds
        runs += [
            _run(r, "connect-per-request", "items", 100 * drift, statements=5.0),
            _run(r, "django-persistent", "items", 600 * drift),
            _run(r, "persistent-process", "items", 590 * drift),
            _run(r, "django-health-checks", "items", 500 * drift, statements=5.0),
            _run(r, "persistent-process", "nodb", 1000 * drift, statements=0.0),
        ]
    runs.append({**_run(1, "django-pool", "items", 0), "error": "server did not start"})
    configs = [
        "connect-per-request",
        "django-persistent",
        "django-health-checks",
        "django-pool",
        "persistent-process",
    ]
    rows = summarise(runs, ["prefork"], configs, ("items", "nodb"))
    ours = next(r for r in rows if r["config"] == "persistent-process" and r["page"] == "items")
    assert ours["vs_reference"] == {"median": 5.9, "min": 5.9, "max": 5.9, "n": 3}
    assert ours["vs_ceiling"]["median"] == pytest.approx(0.59)
    assert ours["rps"]["min"] == 590 and ours["rps"]["max"] == 1180
    pool = next(r for r in rows if r["config"] == "django-pool" and r["page"] == "items")
    assert pool["failed"] == 1 and pool["rps"] is None
    results = {
        "runs": runs,
        "summary": rows,
        "meta": {
            "variants": [{"name": "prefork", "processes": 2, "threads": 1}],
            "metrics_switch_effective": False,
        },
    }
    lines = {line["text"].split(":")[0]: line["status"] for line in evaluate(results)}
    assert lines["persistent_backend (process) vs connect-per-request on /items/<id>/"] == "pass"
    assert lines["persistent_backend (process) vs django-persistent"] == "pass"  # 0.983
    assert lines["persistent_backend (process) not behind django-health-checks"] == "pass"
    assert lines["persistent_backend (process) not behind django-pool"] == "n/a"
    assert lines["persistent-process statements per request on /items/<id>/"] == "pass"
    assert (
        lines["dashboard metrics middleware cost, persistent_backend (process), /items/<id>/"]
        == "n/a"
    )


def test_profiles_summarise_where_the_time_goes():
    lines = [
        "process 1:Thread 2;handle (site/views.py:3);execute (db.py:9) 6",
        "process 1:Thread 2;handle (site/views.py:3);render (t.py:1) 4",
    ]
    summary = summarise_collapsed(lines)
    assert summary["samples"] == 10
    assert summary["self"][0] == ("execute (db.py:9)", 0.6)
    assert summary["total"][0] == ("handle (site/views.py:3)", 1.0)
