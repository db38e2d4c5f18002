"""The committed result files the docs quote, and the generated blocks of the docs.

``bench/published/`` holds the runs the docs quote: ``results.json`` (with ``results.md``
and ``results.png``) of a full ``./deploy.sh bench``, ``micro.json`` of
``python -m bench.micro``, ``prepared.json`` of ``python -m bench.prepared``,
``request_cost.json`` of ``python -m bench.request_cost``, ``instructions.json`` of
``python -m bench.instructions``, ``faults.md`` of
``./deploy.sh faults``, and ``performance/`` (the same three files) of
``./deploy.sh bench --set performance --repeat 5``; the tuner's run lives in ``docs/tuning/``
(``python -m bench.tune --docs-from``). Every figure in README.md and docs/*.md sits
between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` and is rendered from those files
here; ``tests/test_docs.py`` fails when a block and its file disagree, or when a figure
appears outside a block.

``python -m bench.published`` rewrites the blocks; ``--check`` only lists stale files;
``--bench DIR``, ``--performance DIR`` and ``--faults FILE`` first copy a new run in (a
full bench run only).
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from bench import instructions, micro, prepared, report, request_cost
from bench.targets import format_lines
from bench.tune import report as tune_report

REPO_DIR = Path(__file__).resolve().parents[1]
PUBLISHED_DIR = REPO_DIR / "bench" / "published"
BENCH_FILES = ("results.json", "results.md", "results.png")
PERFORMANCE_DIR = "performance"  # the run of --set performance (issue 16's configurations)
FAULTS_FILE = "faults.md"
TUNE_DIR = REPO_DIR / "docs" / "tuning"
TUNE_DOCS = REPO_DIR / "docs" / "tuning.md"
BLOCK = re.compile(
    r"<!-- (?P<name>[a-z]+):begin -->\n(?P<body>(?:.*?\n)?)<!-- (?P=name):end -->", re.S
)
# A measured figure: a ratio (4.44x), a duration with decimals (1.8 ms) or in microseconds
# (63 us), an approximate one (about 5 ms), a rate in requests per second. Settings such
# as "polled every 10 ms" are not figures.
FIGURE = re.compile(
    r"\b\d+(?:\.\d+)?x\b|\b\d+\.\d+ ?(?:ms|us|µs)\b|\b\d+ ?(?:us|µs)\b"
    r"|(?:about|~) ?\d[\d.,]* ?(?:ms|us|µs|s)\b|\b\d[\d,.]* ?(?:req/s|requests/s)",
    re.I,
)


def doc_files(repo_dir=REPO_DIR):
    """README.md and every page under docs/."""
    return [repo_dir / "README.md", *sorted((repo_dir / "docs").glob("*.md"))]


# -- the blocks ------------------------------------------------------------------------
def bench_results(published=PUBLISHED_DIR):
    """The published bench run's results.json."""
    return json.loads((published / "results.json").read_text())


def render_bench(published=PUBLISHED_DIR):
    """The published bench run's markdown, for the docs' generated sections."""
    return report.render_markdown(bench_results(published), level=3).strip()


def render_performance(published=PUBLISHED_DIR):
    """The published ``--set performance`` run's markdown (lending, prepared, wide shape)."""
    results = bench_results(published / PERFORMANCE_DIR)
    return report.render_markdown(results, level=3).strip()


def render_pgbouncer(published=PUBLISHED_DIR):
    """PgBouncer's lines of the published run's targets (paired ratios, backends held)."""
    results = bench_results(published)
    lines = [line for line in format_lines(results["targets"]) if "pgbouncer" in line]
    return (
        f"From the published run ({results['meta']['date']}, see "
        "[performance](performance.md)):\n\n```\n" + "\n".join(lines) + "\n```"
    )


def render_micro(published=PUBLISHED_DIR):
    """The microbenchmarks' table from the published micro.json."""
    return micro.render(json.loads((published / "micro.json").read_text()))


def render_prepared(published=PUBLISHED_DIR):
    return prepared.render(json.loads((published / "prepared.json").read_text()))


def render_cost(published=PUBLISHED_DIR):
    return request_cost.render(json.loads((published / "request_cost.json").read_text()))


def render_instructions(published=PUBLISHED_DIR):
    return instructions.render(json.loads((published / "instructions.json").read_text()))


def render_faults(published=PUBLISHED_DIR):
    """The fault run's file without its title line."""
    text = (published / FAULTS_FILE).read_text()
    return text.split("\n", 1)[1].strip() if text.startswith("# ") else text.strip()


def render_tune(published=PUBLISHED_DIR):
    """The tuner's committed run (docs/tuning/, written by python -m bench.tune --docs-from)."""
    section = tune_report.docs_section(tune_report.load(TUNE_DIR), TUNE_DIR, TUNE_DOCS)
    inner = section.removeprefix(tune_report.DOCS_BEGIN + "\n")
    return inner.removesuffix("\n" + tune_report.DOCS_END)


RENDERERS = {
    "bench": render_bench,
    "performance": render_performance,
    "pgbouncer": render_pgbouncer,
    "micro": render_micro,
    "prepared": render_prepared,
    "cost": render_cost,
    "instructions": render_instructions,
    "faults": render_faults,
    "tune": render_tune,
}


def blocks(text):
    """[(name, body)] of the generated blocks in ``text``."""
    return [(m.group("name"), m.group("body")) for m in BLOCK.finditer(text)]


def rendered(text, published=PUBLISHED_DIR):
    """``text`` with every block rendered again (KeyError for an unknown block name)."""

    def render(match):
        name = match.group("name")
        return f"<!-- {name}:begin -->\n{RENDERERS[name](published)}\n<!-- {name}:end -->"

    return BLOCK.sub(render, text)


def loose_figures(text):
    """Figures written outside the generated blocks (each must come from a result file)."""
    return FIGURE.findall(BLOCK.sub("", text))


def update(paths, published=PUBLISHED_DIR, write=True):
    """Render the blocks of ``paths``; return the files whose text changed (or would)."""
    stale = []
    for path in paths:
        text = path.read_text()
        new = rendered(text, published)
        if new != text:
            stale.append(path)
            if write:
                path.write_text(new)
    return stale


# -- publishing a run --------------------------------------------------------------------
def refusal(results):
    """Why a bench run must not be published (None if it may)."""
    meta = results["meta"]
    if meta["options"]["quick"]:
        return "the docs quote a full run, not a --quick one"
    if meta["options"]["profile"]:
        return "a profiled run's figures are slowed down by the sampler"
    if meta.get("interrupted"):
        return "the run was interrupted"
    failed = sum(1 for run in results["runs"] if run.get("error"))
    if failed:
        return f"{failed} run(s) failed"
    return None


def publish_bench(folder, published=PUBLISHED_DIR):
    """Copy a bench results folder in; RuntimeError saying why when it may not be."""
    reason = refusal(report.load_results(folder))
    if reason:
        raise RuntimeError(reason)
    published.mkdir(parents=True, exist_ok=True)
    for name in BENCH_FILES:
        shutil.copyfile(Path(folder) / name, published / name)


def main(argv=None):
    """``python -m bench.published``: publish given runs, rewrite or --check the docs' figures."""
    p = argparse.ArgumentParser(prog="python -m bench.published", description=__doc__)
    p.add_argument("--check", action="store_true", help="list stale files, change nothing")
    p.add_argument("--bench", type=Path, help="publish this bench/results/<timestamp> first")
    p.add_argument(
        "--performance", type=Path, help="publish this --set performance run's folder first"
    )
    p.add_argument("--faults", type=Path, help="publish this faults.md first")
    args = p.parse_args(argv)
    try:
        if args.bench:
            publish_bench(args.bench)
        if args.performance:
            publish_bench(args.performance, PUBLISHED_DIR / PERFORMANCE_DIR)
        if args.faults:
            shutil.copyfile(args.faults, PUBLISHED_DIR / FAULTS_FILE)
    except (RuntimeError, OSError) as exc:
        print(f"bench.published: not published: {exc}", file=sys.stderr)
        return 2
    stale = update(doc_files(), write=not args.check)
    for path in stale:
        print(f"{path.relative_to(REPO_DIR)}: {'stale' if args.check else 'rewritten'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
