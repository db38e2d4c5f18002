"""``python -m bench.micro``: the connection microbenchmarks the docs quote."""

import json

from bench import micro
from tests.bench import run_module


def run_micro(*args):
    return run_module("bench.micro", *args)


def test_micro_measures_both_drivers_and_writes_its_file(tmp_path):
    out = tmp_path / "micro.json"
    result = run_micro("--connects", 3, "--queries", 20, "--probes", 10, "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert set(data["figures"]) == set(micro.DRIVERS)
    for figures in data["figures"].values():
        assert set(figures) == {key for key, *_ in micro.FIGURES}
        assert all(value > 0 for value in figures.values())
    table = micro.render(data)
    assert "| connect + close (median of 3) |" in table and "psycopg 3" in table
    assert table in result.stdout


def test_micro_refuses_a_count_below_one(tmp_path):
    result = run_micro("--connects", 0, "--out", tmp_path / "micro.json")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bench.micro: --connects, --queries and --probes must be >= 1"
    ]
    assert not (tmp_path / "micro.json").exists()
