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
    for figures in data["configs"].values():
        assert 0 < figures["quiet_us"]["min"] <= figures["cpu_us"]["max"]
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
    assert "no bench/cost_worker.py there" in result.stderr
    assert not out.exists()


def test_summary_pairs_rounds_and_reports_spreads():
    def round_(cpu, quiet):
        return {"cpu_us": cpu, "quiet_us": quiet, "wall_us": 1.0}

    rounds = {
        "stock-prefork": [round_(100.0, 90.0), round_(120.0, 95.0)],
        "persistent-prefork": [round_(101.0, 91.0), round_(124.0, 95.5)],
    }
    configs, comparisons = request_cost.summarise(rounds)
    assert configs["stock-prefork"]["cpu_us"] == {"median": 110.0, "min": 100.0, "max": 120.0}
    assert configs["stock-prefork"]["quiet_us"]["median"] == 92.5
    (pair,) = comparisons
    assert pair["cpu_us"] == {"median": 2.5, "min": 1.0, "max": 4.0}
    assert pair["quiet_us"] == {"median": 0.75, "min": 0.5, "max": 1.0}
    assert "| persistent_backend vs CONN_MAX_AGE=None | prefork | +2.5 us (+1.0 to +4.0)" in (
        request_cost.render(
            {
                "meta": dict.fromkeys(
                    ("date", "machine", "psycopg", "rounds", "requests", "threads", "command"), "x"
                ),
                "configs": configs,
                "comparisons": comparisons,
            }
        )
    )
