"""The dashboard recognises the site's sessions by the application_name the backend gives.

``OPTIONS["application_name"]`` (without ``OPTIONS["persistent"]["application_name"]``)
names the site's connections; the dashboard must read the same prefix, or it would
count the site's own sessions as other clients.
"""

import psycopg2
import pytest
from django.conf import settings

from dashboard import activity, conf, processes
from persistent_backend.options import Options

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def options_application_name(monkeypatch):
    """The default database's OPTIONS carry application_name "shop" (restored after)."""
    default = settings.DATABASES["default"]
    options = dict(default.get("OPTIONS") or {})
    options["application_name"] = "shop"
    options["persistent"] = {
        k: v for k, v in (options.get("persistent") or {}).items() if k != "application_name"
    }
    monkeypatch.setitem(default, "OPTIONS", options)
    return default


def test_prefix_is_the_one_the_backend_uses(options_application_name):
    assert conf.application_prefix() == "shop"
    assert Options.from_settings(options_application_name).application_name == "shop"


def test_persistent_application_name_wins(options_application_name, monkeypatch):
    persistent = {**options_application_name["OPTIONS"]["persistent"], "application_name": "web"}
    monkeypatch.setitem(options_application_name["OPTIONS"], "persistent", persistent)
    assert conf.application_prefix() == "web"
    assert Options.from_settings(options_application_name).application_name == "web"


def test_sessions_named_by_options_count_as_the_site(options_application_name, test_db_url):
    with psycopg2.connect(test_db_url, application_name=f"shop:{processes.HOST}:4242") as conn:
        conn.cursor().execute("SELECT 1")
        site, others = activity.group(activity.fetch())
    conn.close()
    assert (processes.HOST, 4242) in site
    assert not [c for c in others if c["application_name"].startswith("shop:")]
