"""``python -m bench.instructions``: instructions per request, counted by callgrind."""

import json
import subprocess
import sys

import pytest

from bench import instructions
from harness.site import REPO_DIR, clean_environ
from tests.bench import run_module


def test_counts_the_backend_against_stock_and_writes_its_file(tmp_path):
    out = tmp_path / "instructions.json"
    only = ["stock-prefork", "persistent-prefork"]
    result = run_module(
        "bench.instructions", "--requests", 20, "--only", *only, "--out", out, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert list(data["configs"]) == only
    for figures in data["configs"].values():
        low, high = figures["counts"]
        assert high > low > 0
        # A request of the cost page is millions of instructions, not a rounding error.
        assert figures["per_request"] == pytest.approx((high - low) / 20)
        assert figures["per_request"] > 1e6
    (row,) = data["comparisons"]
    stock, ours = (data["configs"][name]["per_request"] for name in only)
    assert row["difference"] == pytest.approx(ours - stock)
    assert row["what"] == "persistent_backend (process) vs CONN_MAX_AGE=None"
    assert instructions.render(data) in result.stdout


def test_refuses_a_count_below_one_and_a_host_without_valgrind(tmp_path):
    out = tmp_path / "instructions.json"
    result = run_module("bench.instructions", "--requests", 0, "--out", out)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bench.instructions: --requests and --jobs must be >= 1"
    ]
    without = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--out", str(out)],
        cwd=REPO_DIR,
        env={**clean_environ(), "PATH": str(tmp_path)},  # nothing to run there
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert without.returncode == 2
    assert without.stderr.strip().splitlines() == [
        "bench.instructions: valgrind is not installed: apt-get install valgrind"
    ]
    assert not out.exists()


def test_totals_and_the_table():
    assert instructions.totals("events: Ir\nfl=x\n0 5\nsummary: 1234\ntotals: 1234\n") == 1234
    with pytest.raises(ValueError):
        instructions.totals("events: Ir\n")
    results = {
        "stock-prefork": {"counts": [10, 30], "per_request": 2_000_000.0},
        "persistent-prefork-pool": {"counts": [10, 31], "per_request": 2_050_000.0},
    }
    (row,) = instructions.compare(results)
    assert row["difference"] == 50_000 and row["percent"] == pytest.approx(2.5)
    meta = dict.fromkeys(("date", "machine", "psycopg", "commit", "command"), "x")
    table = instructions.render(
        {
            "meta": {**meta, "base_requests": 100, "requests": 500},
            "configs": results,
            "comparisons": [row],
        }
    )
    assert "| stock-prefork | 2,000,000 |" in table
    assert "| persistent_backend (pool) vs CONN_MAX_AGE=None | +50,000 | +2.50% |" in table
    assert "between serving 100 and 600 requests" in table
