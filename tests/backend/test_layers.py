"""persistent_backend's modules import only downwards, function-level imports included.

Each module sits in one layer; a module may import modules of lower layers only (not its
own layer, not a higher one), so the import graph has no cycle and each layer can be read
knowing only what lies under it.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = "persistent_backend"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

#: Lowest first.
LAYERS = [
    # Leaves: no import of the package.
    ("counters", "cursors", "deployment", "liveness", "request_context", "sessionstate"),
    ("environment", "pgbouncer", "prepared", "record"),
    ("options",),
    ("stores",),
    ("registry",),
    # Run by the wrapper once per process under mod_wsgi, so below it.
    ("checks",),
    # What the wrapper is made of: checkout's returns, pinning and retries.
    ("lending", "pinning", "returning"),
    ("base",),
    # The public API: stats, the signal receivers, the app and the toolbar panel.
    ("apps", "signals", "stats"),
    ("panels",),
    ("__init__",),
]
pytestmark = pytest.mark.no_db

RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def imported_modules(tree, modules):
    """The package's modules that ``tree`` imports anywhere (functions included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = PACKAGE + ("." + node.module if node.module else "")
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != PACKAGE:
                continue
            if len(parts) > 1 and parts[1] in modules:
                found.add(parts[1])
            elif len(parts) == 1 and not isinstance(node, ast.ImportFrom):
                found.add("__init__")
            elif len(parts) == 1 and all(a.name not in modules for a in node.names):
                found.add("__init__")  # from persistent_backend import stats (a function)
    return found


def back_edges(module, source, modules):
    """``[(module, imported, why)]`` for each import of ``source`` not going down."""
    edges = []
    for target in sorted(imported_modules(ast.parse(source), modules) - {module}):
        if RANK[target] >= RANK[module]:
            where = "the same layer" if RANK[target] == RANK[module] else "a higher layer"
            edges.append((module, target, where))
    return edges


def package_modules():
    return {path.stem: path for path in PACKAGE_DIR.glob("*.py")}


def test_every_module_has_a_layer():
    modules = package_modules()
    assert sorted(set(modules) - set(RANK)) == [], "add the new module to LAYERS"
    assert sorted(set(RANK) - set(modules)) == [], "remove the deleted module from LAYERS"


def test_imports_only_go_down():
    modules = package_modules()
    edges = []
    for module, path in sorted(modules.items()):
        edges.extend(back_edges(module, path.read_text(), modules))
    assert edges == []


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        # A function-level import of a higher layer (stores -> stats, as it once was).
        ("stores", "def f():\n    from persistent_backend.stats import stats\n", "stats"),
        ("request_context", "def f():\n    from persistent_backend import base\n", "base"),
        ("registry", "import persistent_backend.stores\nimport persistent_backend.base\n", "base"),
        ("stores", "from . import registry\n", "registry"),
        ("liveness", "from persistent_backend import record\n", "record"),  # same layer
        ("options", "from persistent_backend import close_all\n", "__init__"),
    ],
)
def test_a_back_edge_fails(module, source, target):
    edges = back_edges(module, source, package_modules())
    assert [edge[1] for edge in edges] == [target]


def test_downward_imports_pass():
    source = "from persistent_backend import liveness\nfrom .options import Options\n"
    assert back_edges("stores", source, package_modules()) == []
