"""Headless Chromium: log in as staff, watch the page fill and update, no console errors;
then forged records and hostile session names: nothing runs, the page says what it skipped."""

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

import psutil
import psycopg2
import pytest
from django.db import connections
from django.test import Client
from playwright.sync_api import expect

from dashboard import processes, store
from harness.browser import chromium, console_errors, log_in_to_dashboard
from harness.modwsgi import DAEMON_USER, get
from harness.waiting import wait_until
from tests.dashboard.conftest import PASSWORD
from tests.dashboard.test_hostile_input import record_for

pytestmark = pytest.mark.browser

TOTAL = '[data-f="requests.total"]'
FITS = (
    "() => { const t = document.querySelector('#processes');"
    " return t.scrollWidth <= t.parentElement.clientWidth"
    " && document.documentElement.scrollWidth <= window.innerWidth; }"
)


def shown_total(page):
    return int(page.locator(TOTAL).first.inner_text().replace(",", ""))


def line_points(page, css):
    return page.eval_on_selector(css, "el => (el.getAttribute('d') || '').split('L').length")


def test_dashboard_fills_and_updates_in_chromium(
    live_site, make_user, output_dir, controllable_cluster
):
    server = live_site(processes=2, threads=1, DASHBOARD_PUBLISH_INTERVAL="1")
    make_user("browser-staff", staff=True)
    for _ in range(10):
        assert get(server.url + "/")[0] == 200
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        log_in_to_dashboard(page, server.url, "browser-staff", PASSWORD)

        # Watch the dashboard from its first byte: every console error counts.
        errors = console_errors(page)
        page.reload()

        rows = page.locator("#processes tbody tr")
        expect(rows.first).to_be_visible()
        assert rows.count() >= 2
        expect(page.locator("#updated time")).to_contain_text("s ago")
        expect(page.locator("#status")).to_have_text("live, every 2 s")

        # Charts fill from the polls: wait for several points, then more traffic.
        page.wait_for_function(
            "() => document.querySelector('#chart-states path') !== null"
            " && document.querySelectorAll('#chart-throughput path.c-req')[0]"
            ".getAttribute('d').split('L').length >= 3",
            timeout=30_000,
        )
        before = shown_total(page)
        before_points = line_points(page, "#chart-throughput path.c-req")
        for _ in range(25):
            assert get(server.url + "/")[0] == 200
        page.wait_for_function(
            f"() => Number(document.querySelector('{TOTAL}').textContent"
            f".replace(/,/g, '')) >= {before + 25}",
            timeout=30_000,
        )
        assert line_points(page, "#chart-throughput path.c-req") > before_points
        assert page.locator("#chart-throughput path.c-req").get_attribute("d")
        expect(page.locator("#figures")).not_to_have_class("stale")
        assert page.locator("#banner-database").is_hidden()

        page.click("#pause")
        expect(page.locator("#status")).to_have_text("paused")
        expect(page.locator("#pause")).to_have_text("Resume")
        page.click("#pause")
        expect(page.locator("#status")).to_have_text("live, every 2 s")
        page.evaluate(
            "() => { Object.defineProperty(document, 'hidden', {value: true,"
            " configurable: true}); document.dispatchEvent(new Event('visibilitychange')); }"
        )
        expect(page.locator("#status")).to_have_text("paused while the tab is hidden")
        page.evaluate(
            "() => { delete document.hidden;"
            " document.dispatchEvent(new Event('visibilitychange')); }"
        )
        expect(page.locator("#status")).to_have_text("live, every 2 s")

        page.screenshot(path=str(output_dir / "dashboard.png"), full_page=True)
        assert errors == []  # no script error, no missing resource (a 404 logs one)
        # The process table fits a 1440-pixel-wide window: no horizontal scrolling.
        assert page.evaluate(FITS), "the process table is wider than the window"

        # PostgreSQL down: a banner, greyed figures; back up: live again.
        controllable_cluster.stop()
        try:
            expect(page.locator("#banner-database")).to_be_visible(timeout=10_000)
            expect(page.locator("#figures")).to_have_class("stale")
        finally:
            controllable_cluster.start()
            controllable_cluster.wait_ready()
        expect(page.locator("#banner-database")).to_be_hidden(timeout=15_000)
        expect(page.locator("#figures")).not_to_have_class("stale")
        errors[:] = [e for e in errors if "status of 503" not in e]  # the list the page fills
        assert errors == []

        # Logged out elsewhere: the next poll shows the banner instead of stale figures
        # (Chromium logs the poll's 403 itself; no script error comes with it).
        page.context.clear_cookies()
        expect(page.locator("#banner-logged-out")).to_be_visible(timeout=10_000)
        expect(page.locator("#figures")).to_have_class("stale")
        assert errors and all("status of 403" in e for e in errors), errors
    # This test process's own kept connection died with the restart too: a request through
    # the site replaces it (outside Playwright's event loop, which Django refuses).
    connections.close_all()
    assert Client().get("/healthz").status_code == 200
    assert (output_dir / "dashboard.png").stat().st_size > 10_000


# -- hostile input ---------------------------------------------------------------------
# Each payload, run, would set a global or fetch a URL; the page must show it as text.
SHORT = "<img src=x onerror=fetch('/xss-a')>"  # fits application_name (63 bytes)
LONG = (
    "</td></tr><script>window.__xss=1;fetch('/xss-b')</script>"
    "<img src=x onerror=\"window.__xss=2;fetch('/xss-c')\"><svg onload=window.__xss=3>"
)


def plant(directory, name, text, uid):
    path = directory / name
    path.write_text(text)
    os.chown(path, uid, uid)


def test_forged_records_and_hostile_names_never_run(
    live_site, make_user, output_dir, test_db_url, held
):
    server = live_site(processes=2, threads=1, DASHBOARD_PUBLISH_INTERVAL="1")
    root = make_user("browser-root", superuser=True)
    daemon = pwd.getpwnam(DAEMON_USER)
    metrics_dir = Path(server.work_dir) / "var" / "metrics"
    wait_until(lambda: any(metrics_dir.glob("p-*.json")), what="the daemons' first records")
    # A process of the daemon user that a forged but well-formed record names, its free
    # text fields carrying the payloads.
    sleeper = subprocess.Popen(["sleep", "120"], user=daemon.pw_uid, group=daemon.pw_gid)
    try:
        proc = psutil.Process(sleeper.pid)
        forged = record_for(
            proc.pid,
            proc.create_time(),
            group=LONG[:200],
            process_group=SHORT,
            backend={"default": {"mode": SHORT, "in_use": 1, "idle": 0, "max_size": 1,
                                 "reconnects": {LONG[:200]: 1}}},
        )  # fmt: skip
        name = store.record_name(forged["host"], forged["pid"], forged["started"])
        plant(metrics_dir, name, json.dumps(forged), daemon.pw_uid)
        # Malformed ones: every field a payload, or the wrong shape.
        bad = {key: LONG for key in forged}
        plant(metrics_dir, f"p-{processes.HOST}-1-1.json", json.dumps(bad), daemon.pw_uid)
        plant(metrics_dir, "p-x-2-2.json", json.dumps({**forged, "pid": LONG}), daemon.pw_uid)
        plant(metrics_dir, "p-x-3-3.json", LONG, daemon.pw_uid)
        other_host = record_for(4242, time.time(), host="web-forged", group=LONG[:200])
        plant(metrics_dir, store.record_name("web-forged", 4242, other_host["started"]),
              json.dumps(other_host), daemon.pw_uid)  # fmt: skip
        # Sessions: another client named with markup, a site session whose query is markup.
        hostile = psycopg2.connect(test_db_url, application_name=SHORT)
        query = held.idle_in_transaction(processes.HOST, server.daemon_pids()[0])
        query.cursor().execute("SELECT %s", [LONG])
        client = Client()
        client.force_login(root)
        cookie = client.cookies["sessionid"].value
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1440, "height": 1200})
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.url}])
            page = context.new_page()
            errors, requested = console_errors(page), []
            context.on("request", lambda r: requested.append(r.url))
            page.goto(server.url + "/dashboard/")
            warning = page.locator("#warnings li", has_text="were skipped")
            expect(warning).to_be_visible()
            assert warning.inner_text().startswith("4 file(s)"), warning.inner_text()
            # The payloads are on the page, as text.
            expect(page.locator("#others")).to_contain_text(SHORT)
            expect(page.locator("#connections")).to_contain_text("<script>window.__xss=1")
            expect(page.locator("#processes")).to_contain_text(f":{proc.pid}")
            # Two more polls of the JSON: the refresh path renders them too.
            page.wait_for_timeout(4500)
            assert page.evaluate("() => window.__xss") is None
            assert page.locator("#processes img, #connections img, #others img").count() == 0
            assert page.locator("#figures script").count() == 0
            assert not [url for url in requested if "xss" in url], requested
            assert errors == [], errors
            assert page.evaluate(FITS), "the process table is wider than the window"
            page.screenshot(path=str(output_dir / "dashboard-hostile.png"), full_page=True)
        headers = {"Cookie": f"sessionid={cookie}"}
        for path in ("/dashboard/api/snapshot", "/metrics"):
            status, body, _ = get(server.url + path, headers=headers)
            assert status == 200, (path, status, body[:300])
        hostile.close()
    finally:
        sleeper.kill()
        sleeper.wait()
