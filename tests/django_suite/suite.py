"""Run Django's own test suite against persistent_backend and compare with what is expected.

For the Django version installed in this interpreter: take its sdist from PyPI (cached in
``var/django-suite/``), start a throwaway PostgreSQL cluster (``harness.pgcluster``),
and run Django's ``tests/runtests.py`` on the database labels once per driver and mode
(settings in ``settings/``). Each test's outcome is recorded by the settings' test runner;
any failure not listed in ``expected_failures.txt``, a listed one that passes, or a run on
the wrong driver or mode makes the exit status non-zero.
"""

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_DIR = HERE.parents[1]
CACHE_DIR = REPO_DIR / "var" / "django-suite"
EXPECTED_FILE = HERE / "expected_failures.txt"
SETTINGS_DIR = HERE / "settings"

# The database labels, then other database-heavy ones that fit the time budget.
LABELS = (
    "backends transactions transaction_hooks select_for_update queries postgres_tests "
    "model_fields expressions aggregation get_or_create delete bulk_create update migrations "
    "schema introspection inspectdb test_utils "
    "basic lookup db_functions annotations prefetch_related select_related many_to_one "
    "model_inheritance raw_query constraints indexes ordering filtered_relation timezones "
    "fixtures"
).split()
MODES = ("thread", "pool")
DRIVERS = ("psycopg2", "psycopg")
FAILED = ("failure", "error", "unexpected_success")
RUN_TIMEOUT = 1800  # seconds for one runtests.py run


class SuiteError(Exception):
    """Something prevents a meaningful run: one line for the user."""


# -- the expected failures -----------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    test_id: str
    runs: str  # fnmatch pattern over "<django version>/<driver>/<mode>"
    why: str

    def applies(self, run_name):
        return fnmatch.fnmatchcase(run_name, self.runs)


def parse_expected(text):
    """``TEST_ID  RUNS  WHY`` lines (``#`` comments); ValueError names a bad line."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1].count("/") != 2:
            raise ValueError(
                f"{EXPECTED_FILE.name}:{number}: want 'TEST_ID  DJANGO/DRIVER/MODE  WHY'"
            )
        entries.append(Expected(*parts))
    ids = [(e.test_id, e.runs) for e in entries]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{EXPECTED_FILE.name}: a test is listed twice for the same runs")
    return entries


def selected(expected, labels):
    """The entries whose tests the labels run (a label names a module, class or test)."""
    return [
        entry
        for entry in expected
        if any(entry.test_id == label or entry.test_id.startswith(label + ".") for label in labels)
    ]


# -- comparing one run -----------------------------------------------------------------------
@dataclass
class Comparison:
    counts: dict
    unexpected: list = field(default_factory=list)  # failed, not listed
    now_passing: list = field(default_factory=list)  # listed, passed
    not_run: list = field(default_factory=list)  # listed, did not run (or was skipped)
    expected_failed: list = field(default_factory=list)

    @property
    def ok(self):
        return not (self.unexpected or self.now_passing or self.not_run)


def compare(outcomes, expected, run_name):
    """Compare ``{test_id: outcome}`` with the expected failures that apply to ``run_name``."""
    listed = {e.test_id for e in expected if e.applies(run_name)}
    counts = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    result = Comparison(counts=counts)
    for test_id, outcome in sorted(outcomes.items()):
        if outcome in FAILED:
            (result.expected_failed if test_id in listed else result.unexpected).append(test_id)
    for test_id in sorted(listed):
        outcome = outcomes.get(test_id)
        if outcome == "ok":
            result.now_passing.append(test_id)
        elif outcome not in FAILED:
            result.not_run.append(test_id)
    return result


# -- Django's sources ----------------------------------------------------------------------
def django_sources(version):
    """Django's ``tests/`` directory of ``version``, from its sdist (downloaded once)."""
    tree = CACHE_DIR / f"django-{version}"
    runtests = tree / "tests" / "runtests.py"
    if runtests.is_file():
        return runtests.parent
    sdists = CACHE_DIR / "sdist"
    sdists.mkdir(parents=True, exist_ok=True)
    archive = _find_sdist(sdists, version)
    if archive is None:
        print(f"downloading Django {version}'s sdist from PyPI into {sdists}", flush=True)
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--dest", str(sdists), f"Django=={version}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        archive = _find_sdist(sdists, version)
        if download.returncode != 0 or archive is None:
            tail = (download.stdout + download.stderr).strip().splitlines()[-3:]
            raise SuiteError(
                f"could not download Django {version}'s sdist ({' / '.join(tail)}): "
                "check the network to PyPI and rerun"
            )
    staging = Path(tempfile.mkdtemp(prefix=f".django-{version}-", dir=CACHE_DIR))
    with tarfile.open(archive) as tar:
        _extract(tar, staging)
    roots = [p for p in staging.iterdir() if (p / "tests" / "runtests.py").is_file()]
    if len(roots) != 1:
        raise SuiteError(f"{archive} has no tests/runtests.py: delete it and rerun")
    roots[0].rename(tree)
    subprocess.run(["rm", "-rf", str(staging)], check=False)
    return tree / "tests"


def _find_sdist(directory, version):
    for name in (f"django-{version}.tar.gz", f"Django-{version}.tar.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _extract(tar, destination):
    """Extract regular files and directories only, inside ``destination`` (a hostile
    archive cannot write elsewhere or create links)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    root = destination.resolve()
    members = []
    for member in tar.getmembers():
        target = (destination / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise SuiteError(f"unsafe member {member.name!r} in Django's sdist: delete it")
        members.append(member)
    tar.extractall(destination, members=members)


# -- one run ---------------------------------------------------------------------------------
def run_one(tests_dir, cluster, driver, mode, labels, log_dir):
    """Run runtests.py once; return its recorded results and the wall time."""
    name = f"{driver}-{mode}"
    results = log_dir / f"{name}.json"
    log = log_dir / f"{name}.log"
    results.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(SETTINGS_DIR),
        "PERSISTENT_SUITE_PORT": str(cluster.port),
        "PERSISTENT_SUITE_MODE": mode,
        "PERSISTENT_SUITE_DRIVER": driver,
        "PERSISTENT_SUITE_RESULTS": str(results),
    }
    cmd = [sys.executable, "runtests.py", "--settings=persistent_suite_settings",
           "--parallel", "1", "--noinput", "--verbosity", "1", *labels]  # fmt: skip
    started = time.monotonic()
    with open(log, "w") as fh:
        try:
            subprocess.run(cmd, cwd=tests_dir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                           timeout=RUN_TIMEOUT, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SuiteError(f"runtests.py ran over {RUN_TIMEOUT} s ({log})") from None
    seconds = time.monotonic() - started
    if not results.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise SuiteError(f"runtests.py did not finish ({log}):\n" + "\n".join(tail))
    return json.loads(results.read_text()), seconds, log


def check_run(payload, driver, mode):
    """Problems with how the run was made: wrong driver, wrong engine or mode."""
    problems = []
    if payload["driver"] != driver:
        problems.append(f"ran on {payload['driver']}, not {driver}")
    for alias, module in payload["engines"].items():
        if module != "persistent_backend.base":
            problems.append(f"database {alias!r} used {module}, not persistent_backend")
    modes = {store["mode"] for store in payload["stores"].values() if store.get("requests")}
    if modes != {mode}:
        problems.append(f"engine modes {sorted(modes)}, not {mode}")
    return problems


def summary_line(run_name, payload, comparison, seconds):
    c = comparison.counts
    return (
        f"{run_name}: {payload['tests_run']} tests, {c.get('ok', 0)} passed, "
        f"{c.get('skipped', 0)} skipped, {c.get('expected_failure', 0)} expected by Django, "
        f"{len(comparison.expected_failed)} listed failures, "
        f"{len(comparison.unexpected)} unexpected failures, "
        f"{len(comparison.now_passing)} listed now passing, {seconds:.0f} s"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tests/django_suite/run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("labels", nargs="*", help=f"test labels (default: {len(LABELS)} labels)")
    every = [f"{driver}/{mode}" for driver in DRIVERS for mode in MODES]
    parser.add_argument(
        "--runs", default=",".join(every), help=f"DRIVER/MODE,... (default: {','.join(every)})"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs at the same time, on one cluster (default 2)"
    )
    args = parser.parse_args(argv)
    runs = [tuple(run.split("/")) for run in dict.fromkeys(args.runs.split(","))]
    if not set(runs) <= {tuple(run.split("/")) for run in every}:
        parser.error(f"--runs takes some of {','.join(every)}")
    if not 1 <= args.jobs <= 8:
        parser.error("--jobs takes 1 to 8")
    try:
        return _run(args.labels or list(LABELS), runs, args.jobs)
    except SuiteError as exc:
        print(f"tests/django_suite/run: {exc}", file=sys.stderr)
        return 2


def _run(labels, runs, jobs):
    import django

    from harness.pgcluster import PgCluster

    version = django.get_version()
    expected = selected(parse_expected(EXPECTED_FILE.read_text()), labels)
    tests_dir = django_sources(version)
    log_dir = CACHE_DIR / f"runs-{version}"
    log_dir.mkdir(parents=True, exist_ok=True)
    python = ".".join(map(str, sys.version_info[:3]))
    print(
        f"Django {version}'s own tests ({len(labels)} labels) on Python {python}: "
        f"{', '.join(f'{driver}/{mode}' for driver, mode in runs)}",
        flush=True,
    )
    started = time.monotonic()
    cluster = PgCluster(tempfile.mkdtemp(prefix="django-suite-")).init().start()
    try:
        with ThreadPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(run_one, tests_dir, cluster, driver, mode, labels, log_dir)
                for driver, mode in runs
            ]
            names = [f"{version}/{driver}/{mode}" for driver, mode in runs]
            failed = [
                name
                for name, future in zip(names, futures, strict=True)
                if not report(name, *future.result(), expected)
            ]
    finally:
        cluster.destroy()
    verdict = f"{len(failed)} of {len(runs)} runs failed" if failed else "green"
    elapsed = time.monotonic() - started
    print(f"Django's own tests against persistent_backend: {verdict} ({elapsed:.0f} s)")
    return 1 if failed else 0


def report(run_name, payload, seconds, log, expected):
    """Print one run's counts and problems; True if it is as expected."""
    _, driver, mode = run_name.split("/")
    comparison = compare(payload["outcomes"], expected, run_name)
    problems = check_run(payload, driver, mode)
    print(summary_line(run_name, payload, comparison, seconds), flush=True)
    problems += [f"unexpected failure: {test_id}" for test_id in comparison.unexpected]
    problems += [
        f"listed in expected_failures.txt but passes: {test_id}"
        for test_id in comparison.now_passing
    ]
    problems += [
        f"listed in expected_failures.txt but did not run: {test_id}"
        for test_id in comparison.not_run
    ]
    for problem in problems:
        print(f"  FAIL {problem}", flush=True)
    if problems:
        print(f"  (full output: {log})", flush=True)
    return not problems
