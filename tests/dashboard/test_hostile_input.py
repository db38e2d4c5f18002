"""Hostile input to the dashboard: forged and malformed records in the metrics directory,
its lock held by another process, a role that names itself a site process, and the page's
own defences (text-only DOM, Content-Security-Policy)."""

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from dashboard import conf, processes, store
from dashboard.histogram import empty_buckets

pytestmark = pytest.mark.django_db(transaction=True)

API = "/dashboard/api/snapshot"
REPO_DIR = Path(__file__).resolve().parents[2]
STATIC = REPO_DIR / "dashboard" / "static" / "dashboard"
TEMPLATE = REPO_DIR / "dashboard" / "templates" / "dashboard" / "index.html"
PAYLOAD = '<img src=x onerror="window.__xss=1"></td><script>window.__xss=2</script>'
# Ways a string can become markup or code in a page: none may appear in the script.
HTML_SINKS = (
    "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
    "Function(", "DOMParser", "createContextualFragment", "srcdoc", ".html(",
)  # fmt: skip


# -- the page's own defences -------------------------------------------------------------
def test_script_builds_the_dom_from_text_only():
    """Every value reaches the page through textContent / createTextNode / numeric SVG
    attributes (dashboard.js's el() and svg()): no HTML parsing anywhere in the script."""
    for path in STATIC.glob("*.js"):
        source = path.read_text()
        found = [sink for sink in HTML_SINKS if sink in source]
        assert not found, f"{path.name} uses {found}"
        # Event-handler attributes are never set, whatever the name.
        assert not re.search(r"setAttribute\(\s*[\"']on", source), path.name


def test_template_draws_no_value_itself():
    """One rendering path: the template is layout only (no figure, no row), values go
    through json_script, and nothing is marked safe or escapes autoescaping."""
    text = TEMPLATE.read_text()
    assert "|safe" not in text and "autoescape off" not in text
    assert "{% for" not in text, "rows are drawn by render() only"
    assert not re.search(r"\{\{\s*snap\.", text), "figures are drawn by render() only"
    assert not re.search(r"\son[a-z]+=", text), "no inline event handler"
    assert '{{ snap|json_script:"dashboard-data" }}' in text
    for tag in re.findall(r"<(?:script|style)(?![^>]*application/json)[^>]*>", text):
        assert 'nonce="{{ csp_nonce }}"' in tag, tag
    tags = (REPO_DIR / "dashboard" / "templatetags" / "dashboard_tags.py").read_text()
    assert "def dfmt" not in tags, "one set of number formats: dashboard.js's"


def test_page_has_a_nonce_content_security_policy(staff_client):
    first = staff_client.get("/dashboard/")
    second = staff_client.get("/dashboard/")
    policies = [r["Content-Security-Policy"] for r in (first, second)]
    nonces = [re.search(r"script-src 'nonce-([^']+)'", p).group(1) for p in policies]
    assert nonces[0] != nonces[1], "a fresh nonce per response"
    for response, policy, nonce in zip((first, second), policies, nonces, strict=True):
        assert "default-src 'none'" in policy and "unsafe-inline" not in policy
        assert f"style-src 'nonce-{nonce}'" in policy and "connect-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        html = response.text
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts and all(f'nonce="{nonce}"' in s or "application/json" in s for s in scripts)


# -- records in the metrics directory ----------------------------------------------------
@pytest.fixture
def metrics_dir(dashboard_metrics_dir):
    """The session's metrics directory, left as it was found (planted files removed).

    The site's own publisher may be writing at the same moment: its temporary files
    (`.tmp-*`, renamed away under our feet) are not ours to remove, and a file that is
    already gone is fine. A failure here would leave planted records for the next test."""
    before = set(os.listdir(dashboard_metrics_dir))
    store._warned.clear()
    yield dashboard_metrics_dir
    for name in set(os.listdir(dashboard_metrics_dir)) - before:
        if name.startswith(".tmp-"):
            continue
        path = dashboard_metrics_dir / name
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
    store._warned.clear()


@pytest.fixture
def sleeper():
    """A real local process (this account's) that a record can name."""
    proc = subprocess.Popen(["sleep", "120"])
    yield psutil.Process(proc.pid)
    proc.kill()
    proc.wait()


def record_for(pid, started, host=None, **fields):
    record = {
        "host": host or processes.HOST,
        "pid": pid,
        "ppid": 1,
        "started": started,
        "group": "forged",
        "server": "other",
        "process_group": None,
        "processes": None,
        "threads": 1,
        "published_at": time.time(),
        "requests": 5,
        "errors_5xx": 0,
        "duration_sum": 0.5,
        "buckets": empty_buckets(),
        "busy_seconds": 0.1,
        "busy_threads": 0,
        "avg_busy_threads": None,
        "backend": None,
    }
    record.update(fields)
    return record


def plant(directory, record, name=None):
    name = name or store.record_name(record["host"], record["pid"], record["started"])
    (directory / name).write_text(json.dumps(record))
    return name


def malformed(directory, sleeper):
    """One planted file per way a record can be wrong; returns how many were planted."""
    started = sleeper.create_time()
    good = record_for(sleeper.pid, started)
    bad = [
        {**good, "pid": PAYLOAD},  # a pid that is markup
        {**good, "requests": "<b>5</b>"},
        {**good, "requests": -1},
        {**good, "duration_sum": float("nan")},
        {**good, "buckets": [1, 2, 3]},
        {**good, "server": PAYLOAD},
        {**good, "backend": {"default": {"in_use": PAYLOAD}}},
        {**good, "backend": {PAYLOAD: {}}},
        {**good, "group": "x" * 1000},
    ]
    names = [plant(directory, record, f"p-bad-{i}.json") for i, record in enumerate(bad)]
    # Named for another record than the one it holds (a stale or forged name).
    names.append(plant(directory, good, store.record_name(processes.HOST, 1, started)))
    names.append(plant(directory, {}, "p-empty.json"))
    (directory / "p-not-json.json").write_text("<script>window.__xss=3</script>")
    (directory / "p-array.json").write_text("[1, 2, 3]")
    (directory / "p-huge.json").write_text(" " * (store.FILE_MAX + 1) + "{}")
    os.mkfifo(directory / "p-fifo.json")  # opening it must not hang the reader
    os.symlink("/etc/passwd", directory / "p-link.json")
    # A valid record of a host that the deployment does not name.
    names.append(plant(directory, record_for(4242, started, host="web-forged")))
    # Published in the far future: it would never go stale.
    future = record_for(sleeper.pid, started, published_at=time.time() + 86400 * 365)
    names.append(plant(directory, future))
    return len(names) + 5  # and the five files written above


def test_malformed_and_forged_records_are_skipped_and_counted(
    staff_client, metrics_dir, sleeper, caplog
):
    count = malformed(metrics_dir, sleeper)
    with caplog.at_level(logging.WARNING, logger="dashboard"):
        first = staff_client.get(API)
        second = staff_client.get(API)
        metrics_text = staff_client.get("/metrics")
    assert first.status_code == second.status_code == metrics_text.status_code == 200
    snap = second.json()
    assert snap["metrics"]["skipped_records"] == count
    warning = next(w for w in snap["warnings"] if w["code"] == "skipped_records")
    assert warning["message"].startswith(f"{count} file(s) in the metrics directory")
    # One warning per bad file in the log, however often the dashboard is polled.
    logged = [r for r in caplog.records if "skipped p-" in r.getMessage()]
    assert len(logged) == count, [r.getMessage() for r in logged]
    assert PAYLOAD not in second.text
    keys = {p["key"] for p in snap["processes"]}
    assert f"{processes.HOST}:{sleeper.pid}" not in keys
    assert not any(p["host"] == "web-forged" for p in snap["processes"])
    page = staff_client.get("/dashboard/")
    assert page.status_code == 200 and "window.__xss" not in page.text


def test_other_hosts_records_only_when_the_deployment_names_them(
    staff_client, metrics_dir, settings
):
    plant(metrics_dir, record_for(4242, time.time() - 60, host="web-b"))
    snap = staff_client.get(API).json()
    assert snap["metrics"]["skipped_records"] == 1
    assert not any(p["host"] == "web-b" for p in snap["processes"])
    settings.DASHBOARD_HOSTS = ["web-b"]
    snap = staff_client.get(API).json()
    assert snap["metrics"]["skipped_records"] == 0
    assert [p["requests"]["total"] for p in snap["processes"] if p["host"] == "web-b"] == [5]


def test_a_valid_record_is_shown_with_its_text_fields_as_data(staff_client, metrics_dir, sleeper):
    """The control: a record that follows the schema is taken, markup in its free-text
    fields included (the page shows it as text: the browser test checks that)."""
    plant(
        metrics_dir,
        record_for(sleeper.pid, sleeper.create_time(), group=PAYLOAD, requests=7),
    )
    snap = staff_client.get(API).json()
    assert snap["metrics"]["skipped_records"] == 0
    mine = next(p for p in snap["processes"] if p["pid"] == sleeper.pid)
    assert mine["requests"]["total"] == 7 and mine["alive"] is True


def test_a_record_for_a_pid_of_another_account_is_refused(metrics_dir, staff_client):
    """The file's owner must be the account the named process runs as."""
    mine = (0, os.geteuid())
    other = next(p for p in psutil.process_iter(["uids"]) if p.info["uids"].effective not in mine)
    plant(metrics_dir, record_for(other.pid, other.create_time()))
    snap = staff_client.get(API).json()
    assert snap["metrics"]["skipped_records"] == 1
    assert other.pid not in {p["pid"] for p in snap["processes"]}


def test_a_file_of_another_account_is_refused(metrics_dir, staff_client, sleeper):
    name = plant(metrics_dir, record_for(sleeper.pid, sleeper.create_time()))
    os.chown(metrics_dir / name, 65534, 65534)  # nobody
    snap = staff_client.get(API).json()
    assert snap["metrics"]["skipped_records"] == 1
    assert sleeper.pid not in {p["pid"] for p in snap["processes"]}


def test_bad_shared_files_start_afresh(metrics_dir, staff_client):
    kept = {}
    for name in (store.RETIRED, "history.json"):
        if (metrics_dir / name).exists():
            kept[name] = (metrics_dir / name).read_bytes()
    try:
        (metrics_dir / store.RETIRED).write_text(json.dumps({"requests": PAYLOAD}))
        (metrics_dir / "history.json").write_text(json.dumps([{"t": PAYLOAD}, 7]))
        response = staff_client.get(API)
    finally:
        for name, data in kept.items():
            (metrics_dir / name).write_bytes(data)
    assert response.status_code == 200
    assert PAYLOAD not in response.text


# -- the lock ----------------------------------------------------------------------------
HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_dashboard_answers_while_another_process_holds_the_lock(staff_client, metrics_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(conf.metrics_dir())], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        response = staff_client.get(API)
        elapsed = time.monotonic() - started
        page = staff_client.get("/dashboard/")
        metrics_text = staff_client.get("/metrics")
    finally:
        holder.kill()
        holder.wait()
    assert response.status_code == page.status_code == metrics_text.status_code == 200
    snap = response.json()
    assert "locked by another process" in snap["metrics"]["error"]
    assert any(w["code"] == "metrics_unavailable" for w in snap["warnings"])
    assert snap["requests"]["total"] is not None
    assert elapsed < 1.0, f"the snapshot took {elapsed:.2f} s behind a held lock"
    # The lock free again: the shared history is written again.
    assert staff_client.get(API).json()["metrics"]["error"] is None


# -- sessions that name themselves site processes ----------------------------------------
@pytest.fixture
def intruder(test_db_url):
    """A role of the same cluster, not the site's."""
    admin = psycopg2.connect(test_db_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS dashboard_intruder")
        cur.execute("CREATE ROLE dashboard_intruder LOGIN")
    conns = []

    def connect(application_name):
        conn = psycopg2.connect(
            test_db_url, user="dashboard_intruder", application_name=application_name
        )
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()
    with admin.cursor() as cur:
        cur.execute("DROP ROLE dashboard_intruder")
    admin.close()


def test_a_session_of_another_role_is_not_a_site_process(staff_client, intruder):
    name = f"site:{processes.HOST}:1"  # pid 1: init, root's, never a site daemon
    intruder(name)
    snap = staff_client.get(API).json()
    assert 1 not in {p["pid"] for p in snap["processes"]}
    others = [c for c in snap["other_clients"] if c["application_name"] == name]
    assert others and others[0]["user"] == "dashboard_intruder"


def test_a_pid_named_by_a_site_session_only_is_never_inspected(staff_client, held):
    """The site's own role naming a local pid that is not one of its daemons (no record):
    listed by its connections, but no psutil figure of that process is read."""
    held.idle(processes.HOST, 1)
    snap = staff_client.get(API).json()
    named = next(p for p in snap["processes"] if p["pid"] == 1 and p["local"])
    assert named["connections"]["total"] == 1
    assert named["alive"] is None  # runs, but not known as ours
    assert named["rss_bytes"] is None and named["cpu_seconds"] is None
    assert not any(w["code"] == "orphaned_connections" for w in snap["warnings"])
