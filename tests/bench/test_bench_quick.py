"""The benchmark keeps working: ``python -m bench --quick`` with a tiny duration.

No speed is asserted (other tests may share the machine): only that every configuration
in every variant served its pages with 2xx responses and that the files are written.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench import report
from bench.configs import CONFIGS, DEFAULT_VARIANTS, METRICS_SWITCH

REPO_DIR = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.apache


@pytest.fixture(scope="module")
def quick_run():
    out = Path(tempfile.mkdtemp(prefix="bench-test-"))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench",
                "--quick",
                "--duration",
                "1",
                "--warmup",
                "0",
                "--out",
                str(out),
            ],
            cwd=REPO_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        folders = sorted(out.iterdir())
        yield result, folders[-1] if folders else None
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_quick_run_writes_results(quick_run):
    result, folder = quick_run
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert folder is not None
    for name in ("results.json", "results.md", "results.png"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (folder / "results.md").read_text()
    assert "## Targets" in markdown and "| `connect-per-request` |" in markdown
    # Progress went to stderr, the table to stdout.
    assert "left |" in result.stderr
    assert "x connect-per-request" in result.stdout


def test_every_configuration_served_2xx(quick_run):
    result, folder = quick_run
    results = json.loads((folder / "results.json").read_text())
    meta = results["meta"]
    assert [v["name"] for v in meta["variants"]] == list(DEFAULT_VARIANTS)
    expected = [c.name for c in CONFIGS]
    if not meta["metrics_switch_effective"]:
        expected.remove("persistent-no-metrics")
        assert any(METRICS_SWITCH in text for text in meta["skipped"])
    assert [c["name"] for c in meta["configs_run"]] == expected
    runs = {(r["variant"], r["config"], r["page"]): r for r in results["runs"]}
    for variant in DEFAULT_VARIANTS:
        for config in expected:
            for page in ("items", "nodb"):
                run = runs[(variant, config, page)]
                assert run["error"] is None, (variant, config, page, run["error"])
                assert run["ok"] > 0 and run["non2xx"] == 0, (variant, config, page, run)
                assert run["served_requests"] >= run["requests"] > 0
    # The server-side counts are exact: connect-per-request pays at least one set-up
    # statement per request on top of the page's own queries; /nodb/ sends none.
    own = meta["page_queries"]["items"]
    assert own >= 3
    cpr = runs[("prefork", "connect-per-request", "items")]
    assert cpr["statements_per_request"] >= own + 1
    assert runs[("prefork", "connect-per-request", "nodb")]["statements"] == 0
    assert runs[("prefork", "django-persistent", "items")]["backends_max"] >= 1
    assert any(line["status"] in {"pass", "short", "n/a"} for line in results["targets"])


def test_readme_section_is_generated_from_a_run(quick_run, tmp_path):
    _, folder = quick_run
    results = json.loads((folder / "results.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nbefore\n\n<!-- section: bench -->\n\nafter\n")
    report.update_readme(results, readme)
    first = readme.read_text()
    assert "## Performance" in first and "<!-- section: bench -->" not in first
    assert first.count(report.README_BEGIN) == 1 and first.endswith("\nafter\n")
    assert "| `django-persistent` |" in first
    # A second update replaces the text between the markers and nothing else.
    results["meta"]["date"] = "2000-01-01 00:00 UTC"
    report.update_readme(results, readme)
    second = readme.read_text()
    assert "2000-01-01 00:00 UTC" in second and second.count("## Performance") == 1
    assert second.split(report.README_BEGIN)[0] == first.split(report.README_BEGIN)[0]


def test_the_readme_refuses_a_quick_run(quick_run, tmp_path):
    _, folder = quick_run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--readme-from",
            str(folder),
            "--readme",
            str(tmp_path / "README.md"),
        ],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "full run" in result.stderr
