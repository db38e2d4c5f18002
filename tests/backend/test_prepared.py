"""``OPTIONS["persistent"]["prepared_statements"]``: server-side binding and psycopg 3's
automatic preparation on kept connections (persistent_backend/prepared.py).

The requests go through Django's real WSGIHandler (views below, ``ROOT_URLCONF`` = this
module); what the server prepared is read from ``pg_prepared_statements`` inside the
request's own session, and statement counts from ``pg_stat_statements``. The option needs
psycopg 3: on psycopg2 only the refusal is tested (run ``DJANGO_PSYCOPG=3 pytest``).
"""

import inspect
import json
from contextlib import contextmanager

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.http import JsonResponse
from django.urls import path

import persistent_backend
from catalog.models import Category, Item
from persistent_backend.base import DatabaseWrapper
from persistent_backend.options import Options
from tests.backend.conftest import InProcessSite, default_stats

needs_psycopg3 = pytest.mark.psycopg3  # deselected on psycopg2 (tests/conftest.py)
PREPARED = {"mode": "thread", "prepared_statements": True}
MARKER = "catalog_category"  # in the text of the view's ORM query, not in the probe's


def query(request):
    """The ORM query ``repeat`` times; ``pin=1`` pins the unit of work (DISCARD ALL at its
    end). Answers the session's backend pid and its prepared statements for the query."""
    if request.GET.get("pin"):
        persistent_backend.pin()
    for _ in range(int(request.GET.get("repeat", 1))):
        list(Category.objects.filter(id__gte=0).values_list("id")[:3])
    raw = connection.connection
    rows = raw.execute(
        "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements "
        "WHERE position(%s in statement) > 0",
        [MARKER],
        prepare=False,
    ).fetchall()
    return JsonResponse({"backend_pid": raw.info.backend_pid, "prepared": dict(rows)})


urlpatterns = [path("query/", query)]


@pytest.fixture
def site(settings):
    settings.ROOT_URLCONF = __name__
    return InProcessSite()


@contextmanager
def driver_options(**values):
    """Django's own ``OPTIONS`` keys for the default database, restored afterwards."""
    options = connection.settings_dict["OPTIONS"]
    saved = {key: options[key] for key in values if key in options}
    options.update(values)
    try:
        yield
    finally:
        for key in values:
            options.pop(key, None)
        options.update(saved)


def until_prepared(site, limit=20, **query):
    """Requests until the view's statement is prepared in its session; their answers."""
    answers = []
    while not answers or not answers[-1]["prepared"]:
        assert len(answers) < limit, answers
        answers.append(site.json("/query/", "&".join(f"{k}={v}" for k, v in query.items())))
    return answers


# -- options --------------------------------------------------------------------------
def settings_with(**persistent):
    return {"NAME": "x", "OPTIONS": {"persistent": persistent}}


@pytest.mark.no_db
@pytest.mark.psycopg2  # the refusal is psycopg2's
def test_psycopg2_is_refused_with_one_line_saying_to_use_psycopg_3():
    with pytest.raises(ImproperlyConfigured) as caught:
        Options.from_settings(settings_with(prepared_statements=True))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith('OPTIONS["persistent"]["prepared_statements"] = True: ')
    assert "needs psycopg 3" in message
    from persistent_backend.checks import settings_messages

    (error,) = settings_messages("default", settings_with(prepared_statements=True))
    assert error.id == "persistent_backend.E001" and "needs psycopg 3" in error.msg


@pytest.mark.no_db
def test_off_by_default_and_validated():
    assert Options.from_settings(settings_with()).prepared_statements is False
    with pytest.raises(ImproperlyConfigured, match="use True or False"):
        Options.from_settings(settings_with(prepared_statements="yes"))
    for bad in (-1, True, "200"):
        with pytest.raises(ImproperlyConfigured, match="an integer >= 0"):
            Options.from_settings(settings_with(pgbouncer_max_prepared_statements=bad))
    with pytest.raises(ImproperlyConfigured, match="declares a PgBouncer: set pgbouncer=True"):
        Options.from_settings(settings_with(pgbouncer_max_prepared_statements=200))


@pytest.mark.no_db
@needs_psycopg3
def test_pgbouncer_is_refused_unless_it_is_declared_to_carry_prepared_statements():
    with pytest.raises(ImproperlyConfigured) as caught:
        Options.from_settings(settings_with(pgbouncer=True, prepared_statements=True))
    message = str(caught.value)
    assert "PgBouncer >= 1.22 with max_prepared_statements > 0" in message
    assert 'OPTIONS["persistent"]["pgbouncer_max_prepared_statements"]' in message
    declared = settings_with(
        pgbouncer=True, prepared_statements=True, pgbouncer_max_prepared_statements=200
    )
    assert Options.from_settings(declared).prepared_statements is True
    # The declaration also lets a user's own prepare_threshold through (refused without).
    bouncer = {**connection.settings_dict, "OPTIONS": {"prepare_threshold": 5}}
    bouncer["OPTIONS"]["persistent"] = {"pgbouncer": True}
    with pytest.raises(ImproperlyConfigured, match=r'OPTIONS\["prepare_threshold"\] cannot'):
        DatabaseWrapper(bouncer, alias="bouncer").get_connection_params()
    bouncer["OPTIONS"]["persistent"]["pgbouncer_max_prepared_statements"] = 200
    params = DatabaseWrapper(bouncer, alias="bouncer").get_connection_params()
    assert params["prepare_threshold"] == 5


@pytest.mark.no_db
def test_django_sees_the_server_side_binding():
    """Django 6.1 sizes bulk operations' batches from it (max_query_params)."""
    on = {**connection.settings_dict, "OPTIONS": {"persistent": {"prepared_statements": True}}}
    assert DatabaseWrapper(on, alias="on").features.uses_server_side_binding is is_psycopg3
    off = {**connection.settings_dict, "OPTIONS": {"persistent": {}}}
    assert DatabaseWrapper(off, alias="off").features.uses_server_side_binding is False


@needs_psycopg3
def test_server_side_binding_contradiction_is_refused(persistent):
    with persistent(**PREPARED), driver_options(server_side_binding=False):
        with pytest.raises(ImproperlyConfigured, match="contradicts"):
            connection.ensure_connection()


@needs_psycopg3
def test_binding_and_threshold_default_to_psycopgs_and_honour_the_users(persistent):
    from django.db.backends.postgresql.base import Cursor, ServerBindingCursor
    from psycopg import Connection

    default = inspect.signature(Connection.connect).parameters["prepare_threshold"].default
    assert default is not None
    with persistent(mode="thread"):
        connection.ensure_connection()
        assert connection.connection.prepare_threshold is None  # Django's: off
        assert connection.connection.cursor_factory is Cursor
    with persistent(**PREPARED):
        connection.ensure_connection()
        assert connection.connection.prepare_threshold == default
        assert connection.connection.cursor_factory is ServerBindingCursor
    with persistent(**PREPARED), driver_options(prepare_threshold=0):
        connection.ensure_connection()
        assert connection.connection.prepare_threshold == 0


# -- on a kept connection ---------------------------------------------------------------
@needs_psycopg3
def test_prepared_after_the_threshold_and_reused_by_the_next_request(site, persistent):
    with persistent(**PREPARED):
        answers = until_prepared(site)
        assert len(answers) > 1  # not before the threshold
        ((name, executions),) = answers[-1]["prepared"].items()
        nxt = site.json("/query/")
        assert nxt["backend_pid"] == answers[-1]["backend_pid"]
        assert nxt["prepared"] == {name: executions + 1}  # the same statement, executed again
        assert default_stats()["opened"] == 1


@needs_psycopg3
def test_the_next_request_after_a_pinned_reset_runs_the_same_query(site, persistent):
    """The second DISCARD ALL on a connection is the one psycopg 3.3 misses by itself."""
    with persistent(**PREPARED):
        first = site.json("/query/", "pin=1")  # DISCARD ALL with nothing prepared yet
        prepared = until_prepared(site)[-1]
        assert prepared["backend_pid"] == first["backend_pid"]
        pinned = site.json("/query/", "pin=1")  # DISCARD ALL drops the statement
        assert pinned["backend_pid"] == first["backend_pid"]
        after = site.json("/query/")
        assert after["backend_pid"] == first["backend_pid"]
        assert after["prepared"] == {}  # gone from the session, and psycopg knows it
        again = until_prepared(site)[-1]  # prepared anew after the threshold
        assert again["backend_pid"] == first["backend_pid"]
        stats = default_stats()
        assert stats["opened"] == 1
        assert stats["pinned_resets"] == 2


@needs_psycopg3
def test_reset_discard_drops_them_every_request_and_the_next_request_works(site, persistent):
    with persistent(**PREPARED, reset="discard"):
        first = site.json("/query/")  # its DISCARD ALL finds nothing prepared
        busy = site.json("/query/", "repeat=12")  # prepared within the request
        assert busy["prepared"], busy
        after = site.json("/query/")
        assert after["backend_pid"] == busy["backend_pid"] == first["backend_pid"]
        assert after["prepared"] == {}
        assert default_stats()["resets"] == 3


@needs_psycopg3
def test_statements_per_request_are_unchanged(page_site, persistent, observer, demo_data):
    """Steady state on the demo page: the same statements with and without the option, no
    DEALLOCATE or DISCARD in between (pg_stat_statements counts executions, prepared or not)."""
    observer.statements_enabled()
    item_id = Item.objects.order_by("id").first().id
    totals = {}
    for prepared in (False, True):
        with persistent(mode="thread", prepared_statements=prepared):
            for _ in range(10):  # past psycopg's threshold: the page's statements prepared
                page_site.get(f"/items/{item_id}/")
            observer.reset_statements()
            for _ in range(50):
                page_site.get(f"/items/{item_id}/")
            statements = observer.statements()
            connection.ensure_connection()  # the kept connection, outside a request
            ((held,),) = connection.connection.execute(
                "SELECT count(*) FROM pg_prepared_statements", prepare=False
            ).fetchall()
            assert (held > 0) is prepared
            assert default_stats()["opened"] == 1
        totals[prepared] = sum(calls for _, calls in statements)
        texts = " ".join(text for text, _ in statements).upper()
        for extra in ("DEALLOCATE", "DISCARD", "SELECT 1", "BEGIN", "ROLLBACK"):
            assert extra not in texts, statements
    assert totals[True] == totals[False] == 4 * 50, totals


@needs_psycopg3
def test_server_side_binding_refuses_what_client_binding_accepts(persistent):
    """docs/backend.md's trade-off table: the raw SQL that stops working with the option."""
    from django.db import ProgrammingError

    from catalog.models import Item

    def outcome(sql, params):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
        except ProgrammingError as exc:
            return str(exc).splitlines()[0]
        finally:
            connection.close()
        return "works"

    many = list(range(70000))
    for prepared in (False, True):
        with persistent(mode="thread", prepared_statements=prepared):
            set_param = outcome("SET statement_timeout = %s", ["5s"])
            interval = outcome("SELECT now() - interval %s", ["1 day"])
            casted = outcome("SELECT now() - %s::interval", ["1 day"])
            try:
                list(Item.objects.filter(id__in=many).values_list("id")[:1])
                in_list = "works"
            except Exception as exc:  # psycopg's OperationalError, raised before sending
                in_list = str(exc)
            finally:
                connection.close()
        if prepared:
            assert set_param == interval == 'syntax error at or near "$1"'
            assert "65535" in in_list
        else:
            assert set_param == interval == in_list == "works"
        assert casted == "works"


@pytest.mark.no_db
def test_the_published_run_prepared_on_one_kept_connection_per_variant():
    """docs/backend.md quotes bench/published/prepared.json (tests/test_docs.py checks the
    table); this checks the run measured what it says."""
    from bench.prepared import PUBLISHED

    facts = json.loads(PUBLISHED.read_text())["connections"]
    assert facts["prepared"]["prepared_held"] > 0
    assert facts["plain"]["prepared_held"] == 0
    assert [facts[variant]["opened"] for variant in ("plain", "prepared")] == [1, 1]
