"""``python -m bench.request_cost``: CPU per request in process, the figures the docs quote."""

import json

from bench import request_cost
from tests.bench import run_module


def run_cost(*args):
    return run_module("bench.request_cost", *args, timeout=600)


def test_request_cost_pairs_the_backend_with_stock_and_writes_its_file(tmp_path):
    out = tmp_path / "request_cost.json"
    only = ["stock-prefork", "persistent-prefork", "persistent-prefork-metrics"]
    result = run_cost("--rounds", 2, "--requests", 40, "--only", *only, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert list(data["configs"]) == only
    assert all(len(rounds) == 2 for rounds in data["rounds"].values())
    assert all(figures["cpu_us"] > 0 for figures in data["configs"].values())
    pairs = {(c["config"], c["baseline"]) for c in data["comparisons"]}
    assert pairs == {
        ("persistent-prefork", "stock-prefork"),
        ("persistent-prefork-metrics", "persistent-prefork"),
    }
    table = request_cost.render(data)
    assert "| persistent_backend vs CONN_MAX_AGE=None | prefork |" in table
    assert table in result.stdout


def test_request_cost_refuses_a_count_below_one_and_a_foreign_checkout(tmp_path):
    out = tmp_path / "request_cost.json"
    result = run_cost("--rounds", 0, "--out", out)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bench.request_cost: --rounds, --requests and --threads must be >= 1"
    ]
    result = run_cost("--against", tmp_path, "--out", out)
    assert result.returncode == 2
    assert "no bench/request_cost.py there" in result.stderr
    assert not out.exists()


def test_summary_pairs_rounds_and_reports_spreads():
    rounds = {
        "stock-prefork": [{"cpu_us": 100.0, "wall_us": 300.0}, {"cpu_us": 120.0, "wall_us": 1}],
        "persistent-prefork": [{"cpu_us": 101.0, "wall_us": 1}, {"cpu_us": 124.0, "wall_us": 1}],
    }
    configs, comparisons = request_cost.summarise(rounds)
    assert configs["stock-prefork"]["cpu_us"] == 110.0
    assert (configs["stock-prefork"]["cpu_us_min"], configs["stock-prefork"]["cpu_us_max"]) == (
        100.0,
        120.0,
    )
    (pair,) = comparisons
    assert (pair["extra_us_min"], pair["extra_us_max"], pair["extra_us"]) == (1.0, 4.0, 2.5)
