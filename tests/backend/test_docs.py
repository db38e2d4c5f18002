"""docs/guarantees.md: every cell names tests that exist; its figures match the JSON files."""

import ast
import json
import re
from pathlib import Path

import pytest

from bench.pinned import markdown_row

REPO_DIR = Path(__file__).resolve().parents[2]
DOC = REPO_DIR / "docs" / "guarantees.md"
FIGURES = sorted((REPO_DIR / "docs" / "figures").glob("pinned-reset-*.json"))
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)(?:\[([\w-]+)\])?`")
EVENTS = ["Kill between statements", "Kill during a statement", "PostgreSQL restart"]
EVENTS += ["fork()", "Leak", "Session state"]

pytestmark = pytest.mark.no_db


def functions_in(path):
    tree = ast.parse((REPO_DIR / path).read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_named_test_exists():
    text = DOC.read_text()
    references = TEST_REFERENCE.findall(text)
    assert len(references) >= 30
    missing = [f"{path}::{name}" for path, name, _ in references if name not in functions_in(path)]
    assert missing == []


def test_the_table_has_every_event_and_a_test_in_every_cell():
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| **")]
    assert [re.match(r"\| \*\*(.+?)\*\*", row).group(1) for row in rows] == EVENTS
    for row in rows:
        cells = [cell for cell in row.strip("|").split(" | ")][1:]
        assert len(cells) == 3, row
        assert all(TEST_REFERENCE.search(cell) for cell in cells), row


def test_figures_match_the_committed_results():
    text = DOC.read_text()
    assert {path.stem for path in FIGURES} == {"pinned-reset-psycopg2", "pinned-reset-psycopg"}
    for path in FIGURES:
        figures = json.loads(path.read_text())
        assert markdown_row(figures) in text, path.name
        assert figures["units"]["plain"]["units"] >= 1000
