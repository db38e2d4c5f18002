"""The package README's compatibility table and pyproject.toml say what the matrix tested.

The table is generated from the committed result of the last matrix run
(``tests/package/matrix.json``); the classifiers and the Django bounds of
``persistent_backend/pyproject.toml`` name exactly the Python versions, Django lines and
drivers that passed there.
"""

import json
import re
import tomllib

import pytest

from tests.package import compat_table, matrix
from tests.package.matrix import DJANGO_LINES, DRIVERS, PYTHONS, RESULT_FILE, next_line, pairings


@pytest.fixture(scope="module")
def result():
    return json.loads(RESULT_FILE.read_text())


@pytest.fixture(scope="module")
def project():
    path = compat_table.README.parent / "pyproject.toml"
    return tomllib.loads(path.read_text())["project"]


def test_readme_table_is_generated_from_the_last_matrix_run(result):
    text = compat_table.README.read_text()
    assert compat_table.current_block(text) == compat_table.block(result), (
        "persistent_backend/README.md is out of date: run python -m tests.package.compat_table "
        "--write"
    )


def test_last_matrix_run_covers_every_pairing_and_passed(result):
    ran = {(r["python_minor"], r["django_line"], r["driver"]): r for r in result["rows"]}
    wanted = {(py, line, d) for py, line in pairings(PYTHONS, DJANGO_LINES) for d in DRIVERS}
    assert set(ran) == wanted
    for key, row in ran.items():
        assert row["result"] == "pass", key
        assert row["tests"]["failed"] == 0 and row["tests"]["passed"] > 0, key
        assert row["django"].startswith(row["django_line"] + "."), key
        assert row["python"].startswith(row["python_minor"] + "."), key


def test_pyproject_declares_exactly_what_was_tested(result, project):
    passed = [r for r in result["rows"] if r["result"] == "pass"]
    classifiers = project["classifiers"]
    pythons = {c.rsplit(" :: ", 1)[1] for c in classifiers
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}  # fmt: skip
    djangos = {c.rsplit(" :: ", 1)[1] for c in classifiers
               if re.fullmatch(r"Framework :: Django :: \d+\.\d+", c)}  # fmt: skip
    assert pythons == {r["python_minor"] for r in passed}
    assert djangos == {r["django_line"] for r in passed}
    lines = sorted(djangos, key=lambda v: tuple(map(int, v.split("."))))
    assert project["dependencies"] == [f"Django>={lines[0]},<{next_line(lines[-1])}"]
    assert project["requires-python"] == f">={min(pythons, key=lambda v: int(v.split('.')[1]))}"
    assert set(project["optional-dependencies"]) == {r["driver"] for r in passed}
    for driver, requirements in project["optional-dependencies"].items():
        (requirement,) = requirements
        tested = {r["driver_version"] for r in passed if r["driver"] == driver}
        low, high = re.fullmatch(
            rf"{driver}(?:\[binary\])?>=([\d.]+),<([\d.]+)", requirement
        ).groups()
        for version in tested:
            as_tuple = tuple(map(int, version.split(".")))
            assert tuple(map(int, low.split("."))) <= as_tuple < tuple(map(int, high.split(".")))


def test_every_run_of_the_matrix_has_its_own_junit_file_and_log():
    files = [path for minor, line in matrix.pairings() for driver in matrix.DRIVERS
             for path in matrix.run_files(f"py{minor}-django{line}", driver)]  # fmt: skip
    assert len(files) == len(set(files)) == 4 * len(matrix.pairings())
