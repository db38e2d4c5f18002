"""persistent_backend with ``pgbouncer: True``: what it changes, what it refuses, and why
(a server-side cursor really breaks behind a real PgBouncer in transaction pooling)."""

import json
import os

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from harness.site import run_manage
from persistent_backend.base import DatabaseWrapper
from persistent_backend.checks import settings_messages
from persistent_backend.deployment import application_name
from persistent_backend.environment import ServerShape
from persistent_backend.options import Options

SHAPE = ServerShape("mod_wsgi", 2, 1)


def settings_dict(persistent=None, **options):
    return {
        "ENGINE": "persistent_backend",
        "NAME": "site",
        "USER": "site",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "6432",
        "OPTIONS": {"persistent": {"pgbouncer": True, **(persistent or {})}, **options},
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False,
        "TIME_ZONE": None,
        "TEST": {},
        "DISABLE_SERVER_SIDE_CURSORS": False,
    }


def ids(messages):
    return [m.id for m in messages]


def test_server_side_cursors_are_disabled_and_check_i002_says_so():
    s = settings_dict()
    DatabaseWrapper(s, alias="bouncer")
    assert s["DISABLE_SERVER_SIDE_CURSORS"] is True
    messages = settings_messages("bouncer", s, SHAPE)
    assert ids(messages) == ["persistent_backend.I002"]
    text = messages[0].msg
    for words in ["DISABLE_SERVER_SIDE_CURSORS", "'rollback' only", "W002", "application_name"]:
        assert words in text, words
    assert messages[0].level == checks.INFO


def test_without_the_switch_nothing_changes():
    s = settings_dict()
    s["OPTIONS"]["persistent"]["pgbouncer"] = False
    DatabaseWrapper(s, alias="direct")
    assert s["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert ids(settings_messages("direct", s, SHAPE)) == []


def test_discard_is_refused_behind_pgbouncer():
    s = settings_dict({"reset": "discard"})
    with pytest.raises(ImproperlyConfigured, match="DISCARD ALL would reset whichever server"):
        Options.from_settings(s)
    assert ids(settings_messages("bouncer", s, SHAPE)) == ["persistent_backend.E001"]
    s["OPTIONS"]["persistent"]["pgbouncer"] = False
    assert Options.from_settings(s).reset == "discard"  # fine without PgBouncer


@pytest.mark.parametrize(
    "options, key",
    [
        ({"assume_role": "reporting"}, "assume_role"),
        ({"options": "-c statement_timeout=5s"}, "options"),
        ({"prepare_threshold": 5}, "prepare_threshold"),
    ],
)
def test_session_state_options_are_refused_at_connect_and_by_e004(options, key):
    s = settings_dict(**options)
    assert ids(settings_messages("bouncer", s, SHAPE)) == [
        "persistent_backend.E004",
        "persistent_backend.I002",
    ]
    wrapper = DatabaseWrapper(s, alias="bouncer")
    with pytest.raises(ImproperlyConfigured, match=f'OPTIONS\\["{key}"\\] cannot be used'):
        wrapper.get_connection_params()


def test_the_budget_check_is_left_to_pgbouncer():
    from persistent_backend.checks import budget_messages

    options = Options.from_settings(settings_dict({"mode": "process"}))
    big = ServerShape("mod_wsgi", 500, 1)
    assert budget_messages("bouncer", options, big, (100, 3, 0)) == []
    direct = Options.from_settings(settings_dict({"mode": "process", "pgbouncer": False}))
    assert ids(budget_messages("direct", direct, big, (100, 3, 0))) == ["persistent_backend.W002"]


def test_the_host_part_of_application_name_can_be_set():
    s = settings_dict({"hostname": "web3", "application_name": "shop"})
    params = DatabaseWrapper(s, alias="bouncer").get_connection_params()
    assert params["application_name"] == f"shop:web3:{os.getpid()}"
    assert application_name("site", 7, host="web1") == "site:web1:7"
    for bad in ["", "a:b", "has space", "x" * 64]:
        with pytest.raises(ImproperlyConfigured, match="hostname"):
            Options.from_settings(settings_dict({"hostname": bad}))


# --- QuerySet.iterator() through a real PgBouncer --------------------------------------------
# Run in the site's own settings (manage.py shell), through PgBouncer with a pool of 2. After
# the first chunk, another client opens a transaction: PgBouncer lends it the server
# connection the iterator just used (LIFO), so the iterator's next FETCH goes to the other
# one, where its server-side cursor does not exist.
ITERATOR_CODE = """
import json, os, psycopg2
from django.db import transaction
from catalog.models import Item
other = psycopg2.connect(os.environ["OTHER_URL"])
result = {}
def read(queryset):
    seen = 0
    for n, item in enumerate(queryset.iterator(chunk_size=50)):
        if n == 1:
            other.cursor().execute("SELECT 1")  # BEGIN; SELECT 1: holds a server connection
        seen += 1
    return seen
try:
    result["autocommit"] = read(Item.objects.order_by("id"))
except Exception as exc:
    result["autocommit_error"] = str(exc).splitlines()[0]
other.rollback()
try:
    with transaction.atomic():
        result["atomic"] = read(Item.objects.order_by("id"))
except Exception as exc:
    result["atomic_error"] = str(exc).splitlines()[0]
other.rollback()
result["items"] = Item.objects.count()
print(json.dumps(result))
"""


def run_iterator(bouncer, switch, site_env):
    env = {
        **site_env,
        "DATABASE_URL": bouncer.url(),
        "OTHER_URL": bouncer.url(),
        "PERSISTENT_PGBOUNCER": switch,
        "DJANGO_DB_ENGINE": "persistent_backend",
    }
    result = run_manage(["shell", "-c", ITERATOR_CODE], env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_iterator_works_behind_pgbouncer_only_with_the_switch(make_bouncer, demo_data, site_env):
    bouncer = make_bouncer(pool_size=2, reserve_pool_size=0)
    broken = run_iterator(bouncer, "0", site_env)
    # The premise: a server-side cursor outlives its transaction and is lost.
    assert "does not exist" in broken.get("autocommit_error", ""), broken
    fixed = run_iterator(bouncer, "1", site_env)
    assert fixed.get("autocommit") == fixed["items"] > 100, fixed
    assert fixed.get("atomic") == fixed["items"], fixed
