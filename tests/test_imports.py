"""Import rules between the top-level packages, checked on every module's source (AST).

Product code (persistent_backend, dashboard, apache_conf and the Django project under
site/) never imports tests, bench or harness; harness never imports tests or bench; bench
never imports tests. Every import statement counts, the ones inside functions included.
"""

import ast
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
PRODUCT = ("persistent_backend", "dashboard", "apache_conf", "site")
FORBIDDEN = {
    **{package: {"tests", "bench", "harness"} for package in PRODUCT},
    "harness": {"tests", "bench"},
    "bench": {"tests"},
}
# The Django project's top-level packages (site/ is on the Python path, not a package).
SITE_PACKAGES = ("catalog", "config")


def module_name(path, root):
    """Dotted name of the module at ``path`` (site/ modules as the project imports them)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "site":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(tree, module, is_package):
    """Every module an import statement of ``tree`` names, relative ones made absolute."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield ".".join([*base, *([node.module] if node.module else [])])
            else:
                yield node.module


def top_level(name):
    """The repository package a dotted module name belongs to (site/'s count as "site")."""
    head = name.split(".")[0]
    return "site" if head in SITE_PACKAGES else head


def violations(root=REPO_DIR):
    """["path: imports X (area may not import Y)", ...] over every module under ``root``."""
    found = []
    for area, banned in FORBIDDEN.items():
        for path in sorted((root / area).rglob("*.py")):
            module = module_name(path, root)
            tree = ast.parse(path.read_text(), str(path))
            for name in imported(tree, module, path.name == "__init__.py"):
                target = top_level(name)
                if target in banned:
                    relative = path.relative_to(root)
                    found.append(f"{relative}: imports {name} ({area} may not import {target})")
    return found


def test_no_module_breaks_the_import_rules():
    assert violations() == []


# Yesterday's back edges (bench reached into the tests' helpers), and the same at function
# level and from product code: a synthetic repository with one such module each must fail.
BACK_EDGES = [
    ("bench/database.py", "from tests.support.pgcluster import PgCluster\n"),
    ("bench/server.py", "from tests.support.modwsgi import ModWsgiServer, get\n"),
    ("bench/pgbouncer.py", "def port():\n    from tests.support.pgcluster import free_port\n"),
    ("harness/modwsgi.py", "def configs():\n    import bench.configs\n"),
    ("dashboard/views.py", "def wait():\n    from harness.waiting import wait_until\n"),
    ("persistent_backend/stores.py", "from bench import configs\n"),
    ("apache_conf/apachectl.py", "import harness.net as net\n"),
    ("site/catalog/views.py", "def f():\n    from tests.faults import harness\n"),
    ("dashboard/panels/__init__.py", "from ...tests import conftest\n"),
]


@pytest.mark.parametrize("relative, source", BACK_EDGES)
def test_a_back_edge_is_caught(tmp_path, relative, source):
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    path.write_text(source)
    (tmp_path / "bench" / "ok.py").parent.mkdir(exist_ok=True)
    (tmp_path / "bench" / "ok.py").write_text("from harness import waiting\nimport apache_conf\n")
    assert len(violations(tmp_path)) == 1, violations(tmp_path)
    assert violations(tmp_path)[0].startswith(relative)


def test_allowed_edges_pass(tmp_path):
    for relative, source in [
        ("bench/server.py", "from harness.modwsgi import ModWsgiServer\n"),
        ("harness/pgbouncer.py", "from apache_conf.sizing import Shape\n"),
        ("dashboard/views.py", "from . import metrics\nfrom persistent_backend import stats\n"),
    ]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    assert violations(tmp_path) == []
