"""docs/tuning.md against the committed run in docs/tuning/ and against the code."""

import re
from pathlib import Path

import pytest

from apache_conf import sizing, tune
from bench.tune import mix, report
from dashboard import advice, conf

REPO_DIR = Path(__file__).resolve().parents[2]
DOCS = REPO_DIR / "docs" / "tuning.md"
RUN = REPO_DIR / "docs" / "tuning"


@pytest.fixture(scope="module")
def result():
    return report.load(RUN)


def flat(text):
    return re.sub(r"\s+", " ", text)


def test_the_docs_section_is_generated_from_the_committed_run(result):
    assert report.docs_section(result, RUN, DOCS) in DOCS.read_text(), (
        "docs/tuning.md is stale: run .venv/bin/python -m bench.tune --docs-from docs/tuning"
    )


def test_the_committed_report_and_chart_are_that_run_s(result):
    assert (RUN / "report.md").read_text() == report.render_markdown(result)
    assert (RUN / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_committed_run_is_a_full_run_that_chose_a_shape(result):
    meta = result["meta"]
    assert not meta["options"]["quick"] and not meta["interrupted"]
    assert meta["options"]["repeat"] >= 3
    assert result["choice"]["chosen"] is not None
    assert result["shapes"] and any(s["shape"] == meta["baseline"] for s in result["shapes"])
    for run in result["runs"]:
        assert run["error"] is None and run["non2xx"] == 0, run


WORDS = {0.5: "half", 2: "two", 4: "four"}


def test_the_figures_the_docs_quote_are_the_code_s():
    text = flat(DOCS.read_text())
    quoted = [
        f"fit in {WORDS[sizing.MEMORY_SHARE]} the memory at {sizing.PROCESS_MIB} MiB each",
        f"at most {sizing.MAX_DEFAULT_THREADS} threads a process",
        f"{tune.BASELINE[0]} process x {tune.BASELINE[1]} threads, is always measured",
        f"up to {WORDS[tune.REFINE_ROUNDS]} refinement phases",
        f"({WORDS[mix.ITEMS_PER_HOME]} item pages for each home page, over {mix.DEMO_ITEMS} items)",
        f"at most {tune.MAX_SOCKET_ERRORS:.0%} of their requests",
        f"by default {tune.P99_FACTOR:g} x the median p99 of the fastest shape",
        f"within {tune.TIE:.0%} of it (`--tie`)",
        f"busy at least {advice.BUSY_RATIO:.0%} of the time",
        f"use less than {advice.CPU_HEADROOM:.0%} of the cores",
        f"at least {advice.MIN_WAITS} times and on at least {advice.WAIT_RATIO:.0%} of requests",
        f"at least {advice.MIN_IDLE_CONNECTIONS} connections while requests use under "
        f"{advice.IDLE_RATIO:.0%}",
        f"reaches {advice.MEMORY_RATIO:.0%} of the memory budget",
        f"`DASHBOARD_BUDGET_WARN_RATIO` ({conf.DEFAULTS['DASHBOARD_BUDGET_WARN_RATIO']:.0%})",
    ]
    missing = [phrase for phrase in quoted if phrase not in text]
    assert not missing, missing
