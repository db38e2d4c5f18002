"""The docs against the repository: figures from committed result files, links that resolve.

Every measured figure in README.md and docs/*.md sits in a generated block that
``python -m bench.published`` renders from ``bench/published/``; a block that differs from
its file, or a figure outside any block, fails here. So does a relative link to a file or
heading that does not exist.
"""

import re
from pathlib import Path

import pytest

from bench import published

REPO_DIR = Path(__file__).resolve().parents[1]
DOCS = published.doc_files(REPO_DIR)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Pages written by other engineers of issue 12 on their own branches (linked from here).
TOP_COMMANDS = """```sh
./deploy.sh          # fresh Debian/Ubuntu: installs everything, runs the site on http://localhost:8000/
./deploy.sh test     # fresh Debian/Ubuntu: installs everything, runs the whole test suite
```"""


def page_id(path):
    return str(path.relative_to(REPO_DIR))


@pytest.mark.parametrize("path", DOCS, ids=page_id)
def test_generated_blocks_match_the_committed_results(path):
    text = path.read_text()
    assert published.rendered(text) == text, (
        f"{page_id(path)} differs from bench/published/: run python -m bench.published"
    )


def test_every_block_is_used():
    names = {name for path in DOCS for name, _ in published.blocks(path.read_text())}
    assert names == set(published.RENDERERS)


@pytest.mark.parametrize("path", DOCS, ids=page_id)
def test_no_figure_outside_a_generated_block(path):
    assert published.loose_figures(path.read_text()) == []


@pytest.mark.parametrize(
    "text",
    [
        "Reusing connections is 3.5-3.8x faster",
        "| `SELECT 1` round trip (median) | 63 us | 66 us |",
        "the query takes about 1.6 ms",
        "served 450 requests at 200 requests/s",
        "0.92-0.98x of the direct throughput",
        "<!-- micro:begin -->\n1.8 ms\n<!-- micro:end -->\nbut 0.8 us here",
    ],
)
def test_a_hand_copied_figure_is_caught(text):
    assert published.loose_figures(text)


def test_a_stale_block_is_caught(tmp_path):
    page = tmp_path / "page.md"
    body = published.render_micro()
    page.write_text(
        f"<!-- micro:begin -->\n{body.replace('ms |', 'ms (edited) |', 1)}\n<!-- micro:end -->\n"
    )
    assert published.update([page], write=False) == [page]


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    return {
        slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")
    }


def links():
    for path in DOCS:
        for target in LINK.findall(path.read_text()):
            if not re.match(r"[a-z]+:", target):
                yield path, target


@pytest.mark.parametrize("path, target", list(links()), ids=lambda v: str(v))
def test_every_link_resolves(path, target):
    file_part, _, anchor = target.partition("#")
    resolved = (path.parent / file_part).resolve() if file_part else path
    assert resolved.exists(), f"{page_id(path)}: {target} does not exist"
    if anchor:
        assert anchor in anchors(resolved), f"{page_id(path)}: no heading #{anchor}"


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (REPO_DIR / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert text.split("\n", 2)[2].startswith(TOP_COMMANDS)
    for page in ("backend", "apache_conf", "dashboard", "reliability", "scaling", "performance"):
        assert f"(docs/{page}.md)" in text
