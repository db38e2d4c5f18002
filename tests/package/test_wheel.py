"""The engine as its own distribution: wheel, fresh venv, a Django project that is not this site.

The wheel is built from ``persistent_backend/`` (its own ``pyproject.toml``) and installed
into a new virtualenv with only Django, one driver (the ``[psycopg2]`` or ``[psycopg]``
extra) and gunicorn. A minimal project written here serves requests through gunicorn's
prefork workers; ``pg_stat_activity`` must show one backend per worker process, reused by
every request that worker served.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from email.parser import Parser
from pathlib import Path

import django
import pytest

from harness.net import free_port
from harness.waiting import wait_until

REPO_DIR = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_DIR / "persistent_backend"
GUNICORN = "gunicorn==27.0.1"
WORKERS = 2
REQUESTS = 60
DRIVERS = {"psycopg2": "psycopg2", "psycopg": "psycopg"}  # extra -> module


def run(cmd, **kwargs):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of persistent_backend/ (the build writes into its
    source folder: build/, *.egg-info)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "persistent_backend"
    shutil.copytree(
        PACKAGE_DIR,
        source,
        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
    )
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
         str(source)])  # fmt: skip
    (built,) = (work / "dist").glob("django_persistent_backend-*.whl")
    return built


def test_wheel_holds_the_engine_alone(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(zf.read(metadata_name).decode())
    top = {name.split("/")[0] for name in names}
    assert top == {"persistent_backend", metadata_name.split("/")[0]}
    shipped = {Path(n).name for n in names if n.startswith("persistent_backend/")}
    sources = {p.name for p in PACKAGE_DIR.glob("*.py")}
    assert sources <= shipped
    assert "persistent_backend/templates/persistent_backend/panel.html" in names
    assert not shipped & {"pyproject.toml", "README.md"}  # the folder's, not the package's

    assert metadata["Name"] == "django-persistent-backend"
    requires = metadata.get_all("Requires-Dist")
    unconditional = [r for r in requires if "extra ==" not in r]
    assert unconditional == ["Django<6.2,>=5.2"]
    assert sorted(metadata.get_all("Provides-Extra")) == ["psycopg", "psycopg2"]
    assert any(r.startswith("psycopg2") and 'extra == "psycopg2"' in r for r in requires)
    assert any(r.startswith("psycopg[binary]") and 'extra == "psycopg"' in r for r in requires)
    assert "# django-persistent-backend" in metadata.get_payload()  # README as description


def test_site_distribution_depends_on_the_engine_distribution():
    site = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())
    engine = tomllib.loads((PACKAGE_DIR / "pyproject.toml").read_text())["project"]
    pin = f"{engine['name']}[psycopg2]=={engine['version']}"
    assert pin in site["project"]["dependencies"]
    # The site's distribution no longer ships the engine's files itself.
    included = site["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(pattern.startswith("persistent_backend") for pattern in included)
    # ./deploy.sh installs both from the checkout in one pip command.
    deploy = (REPO_DIR / "deploy.sh").read_text()
    assert '-e "$ROOT/persistent_backend" -e "$ROOT[' in deploy


MINI_SETTINGS = """
    import os

    SECRET_KEY = "mini-project-only-" + "x" * 40
    DEBUG = False
    ALLOWED_HOSTS = ["127.0.0.1"]
    ROOT_URLCONF = "mini.urls"
    INSTALLED_APPS = ["persistent_backend"]
    DATABASES = {
        "default": {
            "ENGINE": "persistent_backend",
            "NAME": os.environ["MINI_DB_NAME"],
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": os.environ["MINI_DB_PORT"],
            "OPTIONS": {"persistent": {"application_name": "mini"}},
        }
    }
"""

MINI_URLS = """
    import os

    from django.db import connection
    from django.http import JsonResponse
    from django.urls import path

    import persistent_backend


    def page(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM pg_class")
            cursor.fetchone()
        info = persistent_backend.current_connection_info()
        return JsonResponse({
            "pid": os.getpid(),
            "backend_pid": backend_pid,
            "reused": info["reused"],
            "application_name": info["application_name"],
            "driver": type(connection.connection).__module__.split(".")[0],
            "stats": {k: persistent_backend.stats()["default"][k]
                      for k in ("mode", "opened", "reuses", "requests")},
        })


    urlpatterns = [path("", page)]
"""

MINI_WSGI = """
    import os

    from django.core.wsgi import get_wsgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mini.settings")
    application = get_wsgi_application()
"""


def write_project(root):
    package = root / "mini"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, text in (("settings", MINI_SETTINGS), ("urls", MINI_URLS), ("wsgi", MINI_WSGI)):
        (package / f"{name}.py").write_text(textwrap.dedent(text).lstrip())
    return root


def clean_env(**extra):
    """No trace of this repository or its venv: the project sees only the fresh venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env = {k: v for k, v in env.items() if not k.startswith(("DJANGO_", "PERSISTENT_"))}
    return {**env, **extra}


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.mark.parametrize("extra", sorted(DRIVERS))
def test_fresh_venv_serves_through_gunicorn_one_backend_per_process(
    extra, wheel, pg_cluster, tmp_path
):
    if pg_cluster is None:
        pytest.skip("TEST_DATABASE_URL is set: this test creates a database on its own cluster")
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    base_python = getattr(sys, "_base_executable", sys.executable)
    run([base_python, "-m", "venv", str(venv)])
    run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(python), "-m", "pip", "install", "-q", f"{wheel}[{extra}]",
         f"Django=={django.__version__}", GUNICORN])  # fmt: skip

    listing = json.loads(run([str(python), "-m", "pip", "list", "--format", "json"]))
    installed = {package["name"].lower() for package in listing}
    other_driver = "psycopg" if extra == "psycopg2" else "psycopg2"
    assert {"django", "django-persistent-backend", "gunicorn", extra} <= installed
    assert other_driver not in installed
    assert not installed & {"mod-wsgi", "django-debug-toolbar", "django-persistent-reference"}

    project = write_project(tmp_path / "project")
    db_name = f"mini_{extra}"
    pg_cluster.query(f"DROP DATABASE IF EXISTS {db_name}")
    pg_cluster.query(f"CREATE DATABASE {db_name}")
    env = clean_env(MINI_DB_NAME=db_name, MINI_DB_PORT=str(pg_cluster.port))
    code = "import persistent_backend; print(persistent_backend.__file__)"
    where = run([str(python), "-c", code], cwd=project, env=env)
    assert Path(where.strip()).is_relative_to(venv)
    checked = subprocess.run(
        [str(python), "-m", "django", "check", "--database", "default",
         "--settings", "mini.settings"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = open(tmp_path / "gunicorn.log", "w")
    server = subprocess.Popen(
        [str(venv / "bin" / "gunicorn"), "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
         "--chdir", str(project), "mini.wsgi:application"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        first = wait_until(lambda: _answer(url), timeout=60, what=f"gunicorn on port {port}")
        with ThreadPoolExecutor(4) as pool:
            pages = [first, *pool.map(lambda _: fetch(url), range(REQUESTS))]
        sessions = pg_cluster.query(
            "SELECT application_name, pid FROM pg_stat_activity "
            "WHERE datname = %s AND backend_type = 'client backend'",
            [db_name],
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        pg_cluster.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [db_name],
        )
        pg_cluster.query(f"DROP DATABASE IF EXISTS {db_name}")

    assert {page["driver"] for page in pages} == {DRIVERS[extra]}
    backends_by_process = {}
    for page in pages:
        backends_by_process.setdefault(page["pid"], set()).add(page["backend_pid"])
    assert 1 <= len(backends_by_process) <= WORKERS
    # Every worker process used one backend for all the requests it served.
    assert all(len(backends) == 1 for backends in backends_by_process.values())
    # And pg_stat_activity holds exactly those: one session per worker, named after it.
    assert sorted(sessions) == sorted({(p["application_name"], p["backend_pid"]) for p in pages})
    assert all(name.startswith("mini:") and name.endswith(f":{pid}") for name, pid in
               {(p["application_name"], p["pid"]) for p in pages})  # fmt: skip
    assert sum(not page["reused"] for page in pages) == len(backends_by_process)
    last = {}
    for page in pages:
        stats = page["stats"]
        assert stats["mode"] == "thread" and stats["opened"] == 1
        last[page["pid"]] = max(last.get(page["pid"], 0), stats["requests"])
    assert sum(last.values()) == len(pages)


def _answer(url):
    try:
        return fetch(url)
    except OSError:
        return None
