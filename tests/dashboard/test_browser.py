"""Headless Chromium: log in as staff, watch the page fill and update, no console errors."""

import pytest
from django.db import connections
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from harness.modwsgi import get
from tests.dashboard.conftest import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOTAL = '[data-f="requests.total"]'


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
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(server.url + "/dashboard/")
            expect(page).to_have_url(server.url + "/admin/login/?next=/dashboard/")
            page.fill("#id_username", "browser-staff")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page).to_have_url(server.url + "/dashboard/")

            # Watch the dashboard from its first byte: every console error counts.
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
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
            assert errors == []

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
            errors = [e for e in errors if "status of 503" not in e]
            assert errors == []

            # Logged out elsewhere: the next poll shows the banner instead of stale figures
            # (Chromium logs the poll's 403 itself; no script error comes with it).
            page.context.clear_cookies()
            expect(page.locator("#banner-logged-out")).to_be_visible(timeout=10_000)
            expect(page.locator("#figures")).to_have_class("stale")
            assert errors and all("status of 403" in e for e in errors), errors
        finally:
            browser.close()
    # This test process's own kept connection died with the restart too: a request through
    # the site replaces it (outside Playwright's event loop, which Django refuses).
    connections.close_all()
    assert Client().get("/healthz").status_code == 200
    assert (output_dir / "dashboard.png").stat().st_size > 10_000
