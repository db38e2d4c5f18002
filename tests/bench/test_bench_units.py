"""The bench's arithmetic, without servers: parsing, pairing rounds, targets, profiles."""

import pytest

from bench.__main__ import build_options, parser
from bench.configs import (
    CONFIG_SETS,
    CONFIGS,
    DEFAULT_VARIANTS,
    NAMED_VARIANTS,
    Variant,
    parse_variant,
    select_configs,
)
from bench.database import BackendSampler, statements_delta
from bench.interleaved import merge_slices, slice_order
from bench.load import parse_output, wrk_command
from bench.profiling import summarise_collapsed
from bench.report import shape_text, variant_table
from bench.runner import Bench, round_order
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
        "backends_mean": extra.get("mean", extra.get("backends", 2)),
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
    assert lines["persistent_backend (process) vs django-persistent"] == "short"  # 0.983
    assert lines["persistent_backend (process) not behind django-health-checks"] == "pass"
    # django-pool failed in its only round: no figures, so no line (never a pass).
    assert "persistent_backend (process) not behind django-pool" not in lines
    assert lines["persistent-process statements per request on /items/<id>/"] == "pass"
    assert (
        lines["dashboard metrics middleware on vs off, persistent_backend (process), /items/<id>/"]
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


# -- issue 16: lending per transaction, prepared statements, the wide shape -------------
def test_issue_16_configurations_set_their_switches_and_only_theirs():
    prefork, threaded = NAMED_VARIANTS["prefork"], NAMED_VARIANTS["threaded"]
    stock3, lend, prepared = select_configs(  # matrix order
        ["persistent-pool-lend-transaction", "persistent-prepared", "django-persistent-psycopg3"]
    )
    assert lend.env(threaded)["PERSISTENT_LEND"] == "transaction"
    assert lend.env(prefork)["PERSISTENT_MODE"] == "pool"
    assert lend.env(prefork)["PERSISTENT_PREPARED"] == "0"
    assert lend.label(threaded) == "persistent-pool-lend-transaction"
    # Prepared statements: psycopg 3 whatever the run's driver, in the paired mode.
    assert prepared.env(prefork, psycopg="2")["PERSISTENT_PREPARED"] == "1"
    assert prepared.env(prefork, psycopg="2")["DJANGO_PSYCOPG"] == "3"
    assert prepared.env(prefork)["PERSISTENT_LEND"] == ""
    assert prepared.label(prefork) == "persistent-prepared (process)"
    assert prepared.label(threaded) == "persistent-prepared (pool)"
    # Its fair reference: Django's persistent connections on the same driver.
    env = stock3.env(prefork, psycopg="2")
    assert env["DJANGO_DB_ENGINE"] == "django.db.backends.postgresql"
    assert (env["DJANGO_CONN_MAX_AGE"], env["DJANGO_PSYCOPG"]) == ("none", "3")
    assert (env["PERSISTENT_LEND"], env["PERSISTENT_PREPARED"]) == ("", "0")
    for config in CONFIGS:
        if config not in (lend, prepared):
            assert config.env(threaded)["PERSISTENT_LEND"] == ""
            assert config.env(threaded)["PERSISTENT_PREPARED"] == "0"


def test_wide_variant_drives_one_connection_per_thread():
    wide = parse_variant("wide")
    assert (wide.processes, wide.threads, wide.paired_mode) == (2, 16, "pool")
    assert wide.load(8) == 32
    assert NAMED_VARIANTS["threaded"].load(8) == 8 and parse_variant("3x2").load(5) == 5
    assert "wide" not in DEFAULT_VARIANTS
    assert shape_text({"processes": 2, "threads": 16, "clients": 32}, 8) == (
        "2 processes x 16 threads, 32 wrk connections"
    )
    assert shape_text({"processes": 1, "threads": 8, "clients": 8}, 8) == "1 process x 8 threads"


def _options(tmp_path, *argv):
    return build_options(parser().parse_args(list(argv)), tmp_path)


def test_the_performance_set_selects_issue_16s_bench(tmp_path):
    default = _options(tmp_path)
    names = [config.name for config in default.configs]
    assert names == list(CONFIG_SETS["matrix"].configs)
    assert "persistent-pool-lend-transaction" not in names and "persistent-prepared" not in names
    assert [v.name for v in default.variants] == list(DEFAULT_VARIANTS)
    focused = _options(tmp_path, "--set", "performance", "--repeat", "5")
    assert focused.config_set == "performance" and focused.repeat == 5
    assert [v.name for v in focused.variants] == ["prefork", "threaded", "wide"]
    assert focused.page_keys == ("items",)
    assert [config.name for config in focused.configs] == [
        "django-persistent",
        "django-persistent-psycopg3",
        "persistent-process",
        "persistent-thread",
        "persistent-pool",
        "django-persistent-control",
        "persistent-pool-lend-transaction",
        "persistent-prepared",
        "persistent-no-metrics",
    ]
    assert "django-persistent-control" not in names  # not in the default matrix
    # --config adds to the set (in matrix order); --variant and --page replace its own.
    more = _options(
        tmp_path, "--set", "performance", "--config", "connect-per-request", "--variant", "2x2"
    )
    assert more.configs[0].name == "connect-per-request" and len(more.configs) == 10
    assert [v.name for v in more.variants] == ["2x2"]
    assert _options(tmp_path, "--set", "all").configs == list(CONFIGS)
    assert parser().parse_args(["--set", "performance"]).set == "performance"
    with pytest.raises(SystemExit):
        parser().parse_args(["--set", "nope"])


def test_backends_are_recorded_as_mean_and_max():
    sampler = BackendSampler(database=None)
    assert sampler.figures() == dict.fromkeys(("backends_mid", "backends_max", "backends_mean"))
    sampler.samples = [(0.0, 2), (0.25, 4), (0.5, 3), (0.75, 1), (1.0, 5)]
    assert sampler.figures() == {"backends_mid": 3, "backends_max": 5, "backends_mean": 3}
    runs = [_run(r, "django-persistent", "items", 100, backends=8, mean=r + 5.0) for r in (1, 2)]
    (row,) = summarise(runs, ["prefork"], ["django-persistent"], ("items",))
    assert row["backends_mean"] == {"median": 6.5, "min": 6.0, "max": 7.0, "n": 2}
    assert row["backends_max"]["median"] == 8


def _results(runs, variants, metrics=True):
    specs = {
        "prefork": {"name": "prefork", "processes": 2, "threads": 1},
        "threaded": {"name": "threaded", "processes": 1, "threads": 8},
        "wide": {"name": "wide", "processes": 2, "threads": 16, "clients": 32},
    }
    configs = [config.name for config in CONFIGS]
    rows = summarise(runs, variants, configs, ("items",))
    ran = {run["config"] for run in runs}
    results = {
        "runs": runs,
        "summary": rows,
        "meta": {
            "variants": [specs[name] for name in variants],
            "metrics_switch_effective": metrics,
            "options": {"pages": ["items"], "concurrency": 8},
            "configs_run": [{"name": name, "label": {}} for name in configs if name in ran],
        },
    }
    return results, {line["text"].split(":")[0]: line for line in evaluate(results)}


def _rounds(config, variant, *rps, **extra):
    """One /items/<id>/ run per round, ``rps[i]`` in round i + 1."""
    return [_run(r, config, "items", value, variant, **extra) for r, value in enumerate(rps, 1)]


def test_persistent_auto_must_match_django_in_median_and_lowest_round():
    runs = [
        *_rounds("django-persistent", "prefork", 100, 100, 100, 100, 100),
        *_rounds("persistent-process", "prefork", 100, 99, 101, 99.5, 96),  # 0.995, low 0.96
        *_rounds("django-persistent", "threaded", 100, 100, 100, 100, 100),
        *_rounds("persistent-pool", "threaded", 101, 100, 102, 99, 94),  # 1.00, low 0.94
    ]
    _, lines = _results(runs, ["prefork", "threaded"])
    prefork = lines["persistent_backend (process) vs django-persistent"]
    assert prefork["status"] == "pass" and prefork["variant"] == "prefork"
    assert "target median >= 0.99x and lowest round >= 0.95x" in prefork["text"]
    threaded = lines["persistent_backend (pool) vs django-persistent"]
    assert threaded["status"] == "short"  # the median passes, its lowest round does not
    assert threaded["ratio"]["median"] >= 0.99 and threaded["ratio"]["min"] == 0.94


def test_the_control_reports_what_identical_code_gets_and_passes_nothing():
    runs = [
        *_rounds("django-persistent", "prefork", 100, 100, 100, 100, 100),
        *_rounds("django-persistent-control", "prefork", 100, 90, 104, 97, 101),
        *_rounds("persistent-process", "prefork", 100, 100, 100, 100, 100),
    ]
    _, lines = _results(runs, ["prefork"])
    control = lines["control"]
    assert control["status"] == "info" and control["variant"] == "prefork"
    assert control["ratio"]["median"] == 1.0 and control["ratio"]["min"] == 0.9
    assert (
        "django-persistent-control vs django-persistent, identical code: 1.000x"
        in (control["text"])
    )
    assert "(median of 5 rounds, 0.900-1.040)" in control["text"]
    # Not a persistent configuration: no target of its own, no statements line.
    assert not [text for text in lines if text.startswith("django-persistent-control")]
    _, lines = _results([run for run in runs if "control" not in run["config"]], ["prefork"])
    assert "control" not in lines  # not run: not reported


def test_lending_per_transaction_holds_a_share_of_djangos_backends():
    def lend_line(variant, held, django_held, rps=98):
        runs = [
            *_rounds("django-persistent", variant, 100, 100, 100, backends=django_held),
            *_rounds("persistent-pool-lend-transaction", variant, rps, rps, rps, backends=held),
        ]
        _, lines = _results(runs, [variant])
        return lines["persistent-pool-lend-transaction vs django-persistent on /items/<id>/"]

    assert lend_line("threaded", 4, 8)["status"] == "pass"  # half, at 0.98x
    assert lend_line("threaded", 5, 8)["status"] == "short"  # more than half
    assert lend_line("threaded", 4, 8, rps=96)["status"] == "short"  # 0.96x throughput
    assert lend_line("wide", 8, 32)["status"] == "pass"  # a quarter of 2x16's
    line = lend_line("wide", 10, 32)
    assert line["status"] == "short" and "target <= 0.25x" in line["text"]
    assert "max 10 vs 32, mean 10.0 vs 32.0" in line["text"]


def test_prefork_holds_every_persistent_mode_to_djangos_own_driver():
    runs = [
        *_rounds("django-persistent", "prefork", 100, 100, 100),
        *_rounds("django-persistent-psycopg3", "prefork", 90, 90, 90),
        *_rounds("persistent-process", "prefork", 100, 100, 100),
        *_rounds("persistent-thread", "prefork", 97, 98, 99),
        *_rounds("persistent-pool", "prefork", 96, 96, 99),
        *_rounds("persistent-pool-lend-transaction", "prefork", 97, 97, 97),
        *_rounds("persistent-prepared", "prefork", 93.6, 95.4, 99),  # 1.04-1.10 of 90
        *_rounds("persistent_backend+pgbouncer", "prefork", 70, 70, 70),
    ]
    _, lines = _results(runs, ["prefork"])
    status = {text: line["status"] for text, line in lines.items()}
    assert status["persistent-thread vs django-persistent"] == "pass"
    assert status["persistent-pool vs django-persistent"] == "short"
    assert status["persistent-pool-lend-transaction vs django-persistent"] == "pass"
    assert status["persistent-prepared vs django-persistent-psycopg3"] == "pass"
    # The paired mode has the stricter line; PgBouncer's is an information line.
    assert "persistent-process vs django-persistent" not in status
    assert "persistent_backend+pgbouncer vs django-persistent" not in status
    prepared = lines["persistent-prepared (process) vs django-persistent-psycopg3"]
    assert prepared["status"] == "pass"
    assert "1.060x (median of 3 rounds, 1.040-1.100), target >= 1.05x" in prepared["text"]
    runs = [run for run in runs if run["config"] != "persistent-prepared"]
    runs += _rounds("persistent-prepared", "prefork", 90, 92, 99)  # median 1.02
    _, lines = _results(runs, ["prefork"])
    assert lines["persistent-prepared (process) vs django-persistent-psycopg3"]["status"] == (
        "short"
    )


def test_metrics_middleware_and_extra_statements():
    runs = [
        *_rounds("persistent-pool", "threaded", 99, 99, 99),
        *_rounds("persistent-no-metrics", "threaded", 100, 100, 100),
        *_rounds("persistent-process", "prefork", 98, 98, 98),
        *_rounds("persistent-no-metrics", "prefork", 100, 100, 100),
        *_rounds("persistent-prepared", "prefork", 100, 100, 100, statements=5.0),
    ]
    _, lines = _results(runs, ["prefork", "threaded"])
    what = "dashboard metrics middleware on vs off, persistent_backend ({}), /items/<id>/"
    threaded = lines[what.format("pool")]
    assert threaded["status"] == "pass" and "target >= 0.99x" in threaded["text"]
    assert lines[what.format("process")]["status"] == "short"
    extra = "{} statements per request on /items/<id>/"
    assert lines[extra.format("persistent-process")]["status"] == "pass"
    assert lines[extra.format("persistent-prepared")]["status"] == "short"
    _, lines = _results(runs, ["prefork"], metrics=False)
    assert lines[what.format("process")]["status"] == "n/a"


def test_targets_of_configurations_not_run_are_not_reported():
    runs = [
        *_rounds("django-persistent", "threaded", 100, 100),
        *_rounds("persistent-pool", "threaded", 100, 100),
        *_rounds("persistent-pool-lend-transaction", "prefork", 100, 100),
        *_rounds("persistent-prepared", "threaded", 100, 100),
    ]
    runs.append(
        {**_run(3, "persistent-pool-lend-transaction", "items", 0, "threaded"), "error": "x"}
    )
    _, lines = _results(runs, ["prefork", "threaded", "wide"])
    texts = " | ".join(lines)
    # Lending ran in prefork (no Django run there) and failed in threaded; prepared has no
    # psycopg 3 reference; nothing ran in wide; the metrics pair is incomplete.
    assert "vs django-persistent-psycopg3" not in texts
    assert "lend-transaction vs" not in texts
    assert "metrics middleware" not in texts
    assert all(line["variant"] != "wide" for line in lines.values())
    assert {text: line["status"] for text, line in lines.items()} == {
        "persistent_backend (pool) vs django-persistent": "pass",
        "persistent-pool statements per request on /items/<id>/": "pass",
        "persistent-pool-lend-transaction statements per request on /items/<id>/": "pass",
        "persistent-prepared statements per request on /items/<id>/": "pass",
        "persistent_backend (pool) backends vs django-persistent, threaded, /items/<id>/": "info",
    }


def test_the_table_shows_mean_and_max_backends_and_only_measured_ratios():
    runs = [
        *_rounds("django-persistent", "wide", 100, 100, backends=32, mean=31.5),
        *_rounds("persistent-pool-lend-transaction", "wide", 98, 98, backends=6, mean=3.3),
    ]
    results, _ = _results(runs, ["wide"])
    table = variant_table(results, "wide")
    assert "| `persistent-pool-lend-transaction` | 98 |" in table
    assert "| 3.3 (max 6) |" in table and "| 31.5 (max 32) |" in table
    assert "x connect-per-request" not in table and "of /nodb/" not in table


def test_each_round_starts_one_configuration_later_so_each_takes_every_place():
    configs = ["a", "b", "c"]
    orders = [round_order(configs, round_no) for round_no in range(1, 5)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    for place in range(3):
        assert {order[place] for order in orders[:3]} == set(configs)
    assert round_order([], 2) == []


def test_in_slices_every_configuration_takes_every_place_and_both_neighbours():
    orders = [slice_order(3, cycle) for cycle in range(6)]
    assert orders == [[0, 1, 2], [0, 2, 1], [2, 0, 1], [2, 1, 0], [1, 2, 0], [1, 0, 2]]
    for place in range(3):
        assert {order[place] for order in orders} == {0, 1, 2}
    # Each configuration runs right after each other one at some point.
    follows = {(order[i], order[i + 1]) for order in orders for i in range(2)}
    assert follows == {(a, b) for a in range(3) for b in range(3) if a != b}


def _slice(requests, seconds, p50, p99, ok=None, read_errors=0, statuses=None):
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": requests / seconds,
        "bytes": 10 * requests,
        "ok": requests if ok is None else ok,
        "non2xx": requests - (requests if ok is None else ok),
        "statuses": statuses or {},
        "errors": {"connect": 0, "read": read_errors, "write": 0, "timeout": 0},
        "latency_ms": {"mean": p50, "max": p99 * 2, "p50": p50, "p90": p99 / 2, "p99": p99},
    }


def test_a_run_in_slices_adds_up_its_slices():
    merged = merge_slices(
        [
            _slice(1000, 2.0, 3.0, 9.0),
            _slice(600, 2.0, 5.0, 30.0, ok=598, statuses={"503": 2}, read_errors=1),
            _slice(900, 2.0, 4.0, 10.0),
        ]
    )
    assert merged["requests"] == 2500 and merged["seconds"] == 6.0
    assert merged["rps"] == pytest.approx(2500 / 6)  # requests over time, not a mean of rates
    assert merged["ok"] == 2498 and merged["non2xx"] == 2 and merged["statuses"] == {"503": 2}
    assert merged["socket_errors"] == 1 and merged["bytes"] == 25000
    latency = merged["latency_ms"]
    assert latency["p50"] == 4.0 and latency["p99"] == 10.0  # medians over the slices
    assert latency["max"] == 60.0
    assert latency["mean"] == pytest.approx((3.0 * 1000 + 5.0 * 600 + 4.0 * 900) / 2500)
    assert merged["slices"] == [500.0, 300.0, 450.0]


def test_slices_divide_the_duration_and_the_performance_set_uses_them(tmp_path):
    assert _options(tmp_path).slices == 1
    assert _options(tmp_path, "--set", "performance").slices == 5
    assert _options(tmp_path, "--set", "performance", "--slices", "2").slices == 2
    assert _options(tmp_path, "--set", "performance", "--quick", "--duration", "2").slices == 1
    for bad in (["--duration", "10", "--slices", "3"], ["--slices", "0"]):
        with pytest.raises(ValueError, match="--slices must divide --duration"):
            _options(tmp_path, *bad)
    with pytest.raises(ValueError, match="--profile"):
        _options(tmp_path, "--slices", "2", "--profile")


def test_a_run_in_slices_sizes_the_cluster_for_every_site_up_at_once(tmp_path):
    assert Bench(_options(tmp_path)).max_connections() == 200
    assert (
        Bench(_options(tmp_path, "--set", "performance", "--slices", "1")).max_connections() == 200
    )
    # 9 sites of the widest shape (2x16) holding a connection per thread, and a margin.
    assert Bench(_options(tmp_path, "--set", "performance")).max_connections() == 9 * 32 + 20
    prefork = _options(tmp_path, "--set", "performance", "--variant", "prefork")
    assert Bench(prefork).max_connections() == 200  # 9 x 2: the usual cluster is enough


@pytest.mark.apache
def test_bench_sites_start_every_apache_child_and_keep_them(tmp_path):
    """A burst of new connections while the event MPM starts or stops children is reset
    (wrk's read errors at a slice's start): the bench's front end starts them all at once
    and keeps them, as apache_conf's generated configs do. Rendered by mod_wsgi-express
    itself (``setup-server``: the same options as ``start-server``, nothing started)."""
    import re
    import subprocess

    from bench.server import FRONT_END_ARGS
    from harness.modwsgi import DAEMON_USER, ModWsgiServer

    wide = NAMED_VARIANTS["wide"]
    server = ModWsgiServer(
        tmp_path, {}, processes=wide.processes, threads=wide.threads, extra_args=FRONT_END_ARGS
    )
    command = server.command()
    command[1] = "setup-server"
    command.remove("--startup-log")
    command += ["--user", DAEMON_USER, "--group", DAEMON_USER]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    conf = (tmp_path / "server" / "httpd.conf").read_text()
    # The event MPM's block as Apache reads it (the ONE_PROCESS one is for debugging).
    event = conf.split("<IfModule mpm_event_module>", 1)[1]
    block = event.split("<IfDefine !ONE_PROCESS>", 1)[1].split("</IfDefine>", 1)[0]
    value = {k: int(v) for k, v in re.findall(r"^(\w+) (\d+)$", block, re.MULTILINE)}
    assert value["StartServers"] * value["ThreadsPerChild"] >= value["MaxClients"], block
    assert value["MaxSpareThreads"] >= value["MaxClients"], block
    assert value["MinSpareThreads"] < value["MaxClients"], block  # no AH10159 at rest
    assert value["MaxClients"] >= wide.clients
