"""The version matrix: persistent_backend's tests on each Python x Django x driver pairing.

``python -m tests.package.matrix`` makes one virtualenv per Python x Django line under
``var/matrix/`` (the engine and the site from this checkout, Django pinned to the line),
runs ``pytest tests/backend -m "not apache"`` in it once per driver, and writes the result
file ``tests/package/matrix.json``; ``python -m tests.package.compat_table --write`` then
regenerates the table in ``persistent_backend/README.md`` from it (a test checks they agree).
The Apache tests stay with ``./deploy.sh test``: mod_wsgi daemons run as www-data, which
cannot load the Pythons under /root/.pyenv. Exit status 1 if any pairing failed.
"""

import argparse
import glob
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
RESULT_FILE = Path(__file__).resolve().parent / "matrix.json"
WORK_DIR = REPO_DIR / "var" / "matrix"
PYTHONS = ("3.11", "3.12", "3.13")
DJANGO_LINES = ("5.2", "6.0", "6.1")
DRIVERS = ("psycopg2", "psycopg")
# Python versions each Django line supports (Django's FAQ, "What Python version can I use
# with Django?"): the pairings that exist.
DJANGO_PYTHONS = {
    "5.2": ("3.10", "3.11", "3.12", "3.13", "3.14"),
    "6.0": ("3.12", "3.13", "3.14"),
    "6.1": ("3.12", "3.13", "3.14"),
}
PYTEST_TIMEOUT = 1200


def pairings(pythons=PYTHONS, lines=DJANGO_LINES):
    """(python, django line) pairs that exist, in order."""
    return [(py, line) for py in pythons for line in lines if py in DJANGO_PYTHONS[line]]


def find_python(minor):
    """The newest interpreter of ``minor`` on this machine (system first, then pyenv)."""
    candidates = [f"/usr/bin/python{minor}", f"/usr/local/bin/python{minor}"]
    pyenv = sorted(
        glob.glob(f"/root/.pyenv/versions/{minor}.*/bin/python{minor}"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.split("/")[-3])],
    )
    for candidate in candidates + pyenv[::-1]:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def next_line(line):
    major, minor = map(int, line.split("."))
    return f"{major}.{minor + 1}"


def deploy_venv(minor, line):
    """A virtualenv of ./deploy.sh (.venv, .venv-django6...) already on this pairing."""
    code = (
        "import sys, django, importlib.metadata as m, psycopg2, psycopg; "
        "m.version('django-persistent-backend'); "
        "print('%d.%d' % sys.version_info[:2], django.get_version())"
    )
    for venv in sorted(REPO_DIR.glob(".venv*")):
        if not (venv / ".deploy-stamp").is_file():
            continue
        done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                              text=True, cwd=REPO_DIR)  # fmt: skip
        words = done.stdout.split()
        if done.returncode == 0 and len(words) == 2 and words[0] == minor:
            if words[1].startswith(line + "."):
                return venv
    return None


def ensure_venv(python, line, log):
    """./deploy.sh's venv of this pairing if there is one, else var/matrix/py<minor>-django<line>,
    reinstalled when the inputs change."""
    minor = ".".join(python_version(python).split(".")[:2])
    reused = deploy_venv(minor, line)
    if reused is not None:
        return reused
    venv = WORK_DIR / f"py{minor}-django{line}"
    spec = f"Django>={line},<{next_line(line)}"
    digest = hashlib.sha256()
    for path in (REPO_DIR / "pyproject.toml", REPO_DIR / "persistent_backend" / "pyproject.toml"):
        digest.update(path.read_bytes())
    want = f"{python} {spec} {digest.hexdigest()[:16]}"
    stamp = venv / ".matrix-stamp"
    if stamp.is_file() and stamp.read_text() == want and (venv / "bin" / "python").exists():
        return venv
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "-e", str(REPO_DIR / "persistent_backend"), "-e", f"{REPO_DIR}[test,psycopg3]", spec],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, timeout=1200)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step)} failed: see {log.name}")
    stamp.write_text(want)
    return venv


def python_version(python):
    return subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def installed_versions(venv):
    code = (
        "import importlib.metadata as m, json, platform; print(json.dumps({'python': "
        "platform.python_version(), **{n: m.version(n) for n in "
        "('Django', 'psycopg2', 'psycopg', 'django-persistent-backend')}}))"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return json.loads(out)


def run_backend_tests(venv, driver, junit, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PERSISTENT_"))}
    env["DJANGO_PSYCOPG"] = "3" if driver == "psycopg" else "2"
    cmd = [str(venv / "bin" / "python"), "-m", "pytest", "tests/backend", "-m", "not apache",
           "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                          timeout=PYTEST_TIMEOUT)  # fmt: skip
    seconds = time.monotonic() - started
    counts = junit_counts(junit)
    return done.returncode, counts, seconds


def junit_counts(path):
    """Pass/skip/fail counts from pytest's junit file; None when it is missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    failed = int(suite.get("failures")) + int(suite.get("errors"))
    return {"passed": total - skipped - failed, "skipped": skipped, "failed": failed}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.package.matrix",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--pythons", default=",".join(PYTHONS))
    parser.add_argument("--django", default=",".join(DJANGO_LINES))
    parser.add_argument("--drivers", default=",".join(DRIVERS))
    parser.add_argument("--jobs", type=int, default=2, help="test runs at the same time")
    parser.add_argument("--out", type=Path, default=RESULT_FILE, help="result file")
    args = parser.parse_args(argv)
    pythons, lines, drivers = (v.split(",") for v in (args.pythons, args.django, args.drivers))
    unknown = (set(pythons) - set(PYTHONS)) | (set(lines) - set(DJANGO_LINES))
    if unknown or set(drivers) - set(DRIVERS) or not 1 <= args.jobs <= 8:
        parser.error(f"--pythons {','.join(PYTHONS)}; --django {','.join(DJANGO_LINES)}; "
                     f"--drivers {','.join(DRIVERS)}; --jobs 1 to 8")  # fmt: skip
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows, runs = [], []
    # Virtualenvs one after the other (pip builds in the source folders); each one's test
    # runs start as soon as it is ready, --jobs at a time (each run starts its own
    # PostgreSQL cluster on a free port).
    pool = ThreadPoolExecutor(args.jobs)
    for minor, line in pairings(pythons, lines):
        python = find_python(minor)
        if python is None:
            print(f"Python {minor} x Django {line}: no Python {minor} on this machine", flush=True)
            rows.append({"python_minor": minor, "django_line": line, "result": "no interpreter"})
            continue
        name = f"py{minor}-django{line}"
        setup_started = time.monotonic()
        with open(WORK_DIR / f"{name}-setup.log", "w") as log:
            try:
                venv = ensure_venv(python, line, log)
                versions = installed_versions(venv)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                print(f"Python {minor} x Django {line}: FAIL installing ({exc})", flush=True)
                rows += [{"python_minor": minor, "django_line": line, "driver": d,
                          "result": "fail", "why": "install failed"} for d in drivers]  # fmt: skip
                continue
        setup_seconds = round(time.monotonic() - setup_started, 1)
        print(f"Python {versions['python']} x Django {versions['Django']}: {venv} "
              f"({setup_seconds:.0f} s)", flush=True)  # fmt: skip
        for driver in drivers:
            row = {
                "python_minor": minor,
                "python": versions["python"],
                "venv": str(venv.relative_to(REPO_DIR)),
                "django_line": line,
                "django": versions["Django"],
                "driver": driver,
                "driver_version": versions[driver],
                "package_version": versions["django-persistent-backend"],
                "setup_seconds": setup_seconds,
            }
            setup_seconds = 0.0
            rows.append(row)
            junit, log = run_files(name, driver)
            runs.append((row, log, pool.submit(test_pairing, row, venv, junit, log)))
    with pool:
        for row, log, future in runs:
            future.result()
            where = "" if row["result"] == "pass" else f"; log: {log}"
            print(
                f"Python {row['python']} x Django {row['django']} x {row['driver']} "
                f"{row['driver_version']}: {row['result'].upper()} {row['tests']} "
                f"({row['seconds']:.0f} s{where})",
                flush=True,
            )
            if row["result"] != "pass":  # CI keeps only what is printed
                tail = log.read_text(errors="replace").splitlines()[-40:]
                print("\n".join(f"    {line}" for line in tail), flush=True)
    total = time.monotonic() - started
    failed = [r for r in rows if r["result"] == "fail"]
    result = {
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "command": "python -m tests.package.matrix",
        "tests": 'pytest tests/backend -m "not apache"',
        "jobs": args.jobs,
        "total_seconds": round(total),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"matrix: {len(rows) - len(failed)} of {len(rows)} pairings passed in {total:.0f} s "
        f"(written to {args.out})"
    )
    return 1 if failed else 0


def run_files(name, driver):
    """The junit file and log of one run. Names like "py3.12-django6.0" hold dots, so never
    Path.with_suffix: both drivers' runs, which go on at once, would share one file."""
    return WORK_DIR / f"{name}-{driver}.xml", WORK_DIR / f"{name}-{driver}.log"


def test_pairing(row, venv, junit, log_path):
    """Run the backend tests for one row (in a worker thread); fill in its result."""
    junit.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        try:
            code, counts, seconds = run_backend_tests(venv, row["driver"], junit, log)
        except subprocess.TimeoutExpired:
            code, counts, seconds = None, None, PYTEST_TIMEOUT
            log.write(f"\nmatrix: pytest did not finish in {PYTEST_TIMEOUT} s\n")
    ok = code == 0 and counts is not None and counts["passed"] > 0
    row.update(result="pass" if ok else "fail", tests=counts, seconds=round(seconds, 1))


if __name__ == "__main__":
    sys.exit(main())
