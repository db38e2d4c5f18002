"""Headless Chromium: the advice panel is drawn on first paint and redrawn by advice.js as
the live figures change (no reload), with no console error."""

import pytest
from playwright.sync_api import expect

from harness.browser import chromium, console_errors, log_in_to_dashboard
from harness.load import Load

pytestmark = [pytest.mark.browser, pytest.mark.apache]

PASSWORD = "advice-browser-password-5"


def test_advice_panel_updates_in_chromium(live_site, django_user_model, django_db_blocker):
    from catalog.models import Item

    with django_db_blocker.unblock():
        ids = list(Item.objects.order_by("id").values_list("id", flat=True)[:20])
    server = live_site(
        processes=1,
        threads=4,
        PERSISTENT_MODE="pool",
        PERSISTENT_MAX_SIZE="1",
        DASHBOARD_PUBLISH_INTERVAL="1",
        DASHBOARD_MEMORY_BUDGET_MIB="64",
    )
    django_user_model.objects.create_user("advice-browser", password=PASSWORD, is_staff=True)
    with chromium() as browser:
        page = browser.new_page()
        log_in_to_dashboard(page, server.url, "advice-browser", PASSWORD)
        errors = console_errors(page)
        page.reload()

        panel = page.locator("#advice")
        expect(panel).to_be_visible()
        memory = page.locator('#advice-list li[data-rule="memory"]')
        expect(memory).to_contain_text("of the 64 MiB memory budget")
        assert "pooled connection" not in page.locator("#advice-list").inner_text()

        # 4 threads share 1 pooled connection: under load they wait for it, and the
        # next polls redraw the list in place.
        paths = [f"/items/{item_id}/" for item_id in ids]
        with Load(server.url, paths, total=1_000_000, concurrency=12, deadline=60):
            waits = page.locator('#advice-list li[data-rule="pool_waits"]')
            expect(waits).to_contain_text("waited for a pooled connection", timeout=30_000)
        items = page.locator("#advice-list li")
        assert items.count() >= 2
        # Built with textContent: every line is plain text, no markup inside.
        assert page.eval_on_selector_all(
            "#advice-list li", "els => els.every(el => el.children.length === 0)"
        )
        assert not errors, errors
