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

from bench import published as bench_published
from bench.configs import CONFIG_SETS, DEFAULT_SET, DEFAULT_VARIANTS, METRICS_SWITCH

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


def served_errors(results):
    """[(variant, config, page, what went wrong)] of every run that did not serve only 2xx."""
    problems = []
    for run in results["runs"]:
        key = (run["variant"], run["config"], run["page"])
        if run.get("error"):
            problems.append((*key, run["error"]))
        elif run["ok"] == 0 or run["non2xx"] or run["socket_errors"]:
            problems.append(
                (*key, f"{run['ok']} 2xx, {run['non2xx']} non-2xx, {run['socket_errors']} errors")
            )
    return problems


@pytest.mark.parametrize(
    "damage",
    [{"non2xx": 3, "statuses": {"500": 3}}, {"socket_errors": 2}, {"ok": 0}, {"error": "503"}],
)
def test_a_configuration_that_served_errors_fails_the_check(quick_run, damage):
    _, folder = quick_run
    results = json.loads((folder / "results.json").read_text())
    results["runs"][-1].update(damage)
    problems = served_errors(results)
    last = results["runs"][-1]
    assert [problem[:3] for problem in problems] == [
        (last["variant"], last["config"], last["page"])
    ]


def test_every_configuration_served_2xx(quick_run):
    result, folder = quick_run
    results = json.loads((folder / "results.json").read_text())
    meta = results["meta"]
    assert [v["name"] for v in meta["variants"]] == list(DEFAULT_VARIANTS)
    expected = list(CONFIG_SETS[DEFAULT_SET].configs)
    if not meta["metrics_switch_effective"]:
        expected.remove("persistent-no-metrics")
        assert any(METRICS_SWITCH in text for text in meta["skipped"])
    assert [c["name"] for c in meta["configs_run"]] == expected
    runs = {(r["variant"], r["config"], r["page"]): r for r in results["runs"]}
    assert set(runs) == {
        (variant, config, page)
        for variant in DEFAULT_VARIANTS
        for config in expected
        for page in ("items", "nodb")
    }
    assert served_errors(results) == []
    for run in results["runs"]:
        assert run["served_requests"] >= run["requests"] > 0
    # The server-side counts are exact: connect-per-request pays at least one set-up
    # statement per request on top of the page's own queries; /nodb/ sends none.
    own = meta["page_queries"]["items"]
    assert own >= 3
    cpr = runs[("prefork", "connect-per-request", "items")]
    assert cpr["statements_per_request"] >= own + 1
    assert runs[("prefork", "connect-per-request", "nodb")]["statements"] == 0
    persistent = runs[("prefork", "django-persistent", "items")]
    assert persistent["backends_max"] >= 1
    assert 0 < persistent["backends_mean"] <= persistent["backends_max"]
    assert any(line["status"] in {"pass", "short", "n/a"} for line in results["targets"])


def test_docs_blocks_are_rendered_from_a_published_run(quick_run, tmp_path):
    _, folder = quick_run
    published = tmp_path / "published"
    published.mkdir()
    shutil.copyfile(folder / "results.json", published / "results.json")
    page = tmp_path / "performance.md"
    page.write_text(
        "# Performance\n\nbefore\n\n<!-- bench:begin -->\nSTALE TEXT\n<!-- bench:end -->\nafter\n"
    )
    assert bench_published.update([page], published) == [page]
    first = page.read_text()
    assert "STALE TEXT" not in first and "| `django-persistent` |" in first
    assert first.startswith("# Performance\n\nbefore\n\n") and first.endswith("\nafter\n")
    assert bench_published.loose_figures(first) == []
    # Rendering again changes nothing; the check mode sees a hand edit inside the block.
    assert bench_published.update([page], published) == []
    page.write_text(first.replace("| `django-persistent` |", "| `django-persistent` | 9,999 |"))
    assert bench_published.update([page], published, write=False) == [page]


def test_a_quick_run_is_never_published(quick_run, tmp_path):
    _, folder = quick_run
    with pytest.raises(RuntimeError, match="full run"):
        bench_published.publish_bench(folder, tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_run_in_slices_keeps_every_sites_sessions_and_statements_apart(tmp_path):
    """Three sites up at once, taking turns: each run's backends and statements are its
    own site's (by login role), not the others' sitting idle or connecting beside it."""
    configs = ["connect-per-request", "django-persistent", "persistent-process"]
    argv = [sys.executable, "-m", "bench", "--variant", "prefork", "--page", "items"]
    argv += [arg for name in configs for arg in ("--config", name)]
    argv += ["--duration", "2", "--slices", "2", "--warmup", "0", "--repeat", "1"]
    result = subprocess.run(
        [*argv, "--out", str(tmp_path)],
        cwd=REPO_DIR,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "cycle 2/2" in result.stderr
    (folder,) = tmp_path.iterdir()
    results = json.loads((folder / "results.json").read_text())
    assert results["meta"]["options"]["slices"] == 2
    assert "in 2 slices of 1 s" in (folder / "results.md").read_text()
    runs = {run["config"]: run for run in results["runs"]}
    assert sorted(runs) == sorted(configs) and served_errors(results) == []
    own = results["meta"]["page_queries"]["items"]
    for name in configs:
        run = runs[name]
        assert len(run["slices"]) == 2 and run["served_requests"] >= run["requests"] > 0
    # Connecting per request pays set-up statements the persistent sites never send; had
    # the counts been pooled, the persistent sites would show them too.
    assert runs["connect-per-request"]["statements_per_request"] >= own + 1
    for name in ("django-persistent", "persistent-process"):
        assert runs[name]["extra_statements_per_request"] == pytest.approx(0, abs=0.02)
        # Two daemon processes, one connection each: the other persistent site's two,
        # idle meanwhile, are not counted.
        assert 1 <= runs[name]["backends_max"] <= 2
