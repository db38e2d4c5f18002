"""Debian's Chromium under Playwright, for the browser tests: launched headless from
/usr/bin/chromium (never a downloaded browser), a staff login through the admin form, and
every console error and uncaught exception kept for the test to assert on."""

from contextlib import contextmanager

from playwright.sync_api import expect, sync_playwright

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


@contextmanager
def chromium():
    """A headless Chromium browser, closed on exit."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def console_errors(page):
    """A list that fills with the page's console errors and uncaught exceptions from now on."""
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def log_in_to_dashboard(page, base_url, username, password):
    """Open /dashboard/, get sent to the admin login, log in, and land back on it."""
    page.goto(base_url + "/dashboard/")
    expect(page).to_have_url(base_url + "/admin/login/?next=/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page).to_have_url(base_url + "/dashboard/")
