"""Options, and what ``auto`` picks under mod_wsgi, runserver, ASGI and elsewhere."""

import asyncio
import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from persistent_backend import environment
from persistent_backend.environment import ServerShape, default_max_size, resolve_mode
from persistent_backend.options import Options
from tests.backend.conftest import default_stats


def options(**persistent):
    return Options.from_settings({"OPTIONS": {"persistent": persistent}})


@pytest.mark.no_db
def test_defaults():
    o = options()
    assert (o.mode, o.max_size, o.checkout_timeout, o.max_age) == ("auto", None, 5.0, 1800.0)
    assert (o.max_uses, o.idle_timeout, o.ping_after, o.reset) == (None, 300.0, None, "rollback")
    assert o.application_name == "site"


@pytest.mark.no_db
@pytest.mark.parametrize(
    "bad, message",
    [
        ({"mode": "threads"}, "use one of auto, process, thread, pool"),
        ({"reset": "all"}, "use one of rollback, discard"),
        ({"max_size": 0}, "positive integer"),
        ({"max_uses": 2.5}, "positive integer"),
        ({"max_age": -1}, "seconds >= 0"),
        ({"checkout_timeout": None}, "seconds >= 0"),
        ({"jitter": 1}, "fraction"),
        ({"reopen": "yes"}, "True or False"),
        ({"application_name": ""}, "non-empty"),
        ({"maxsize": 3}, "unknown key(s) maxsize"),
    ],
)
def test_invalid_options_are_clear_errors(bad, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        options(**bad)


@pytest.mark.no_db
def test_explicit_libpq_application_name_is_the_prefix():
    parsed = Options.from_settings({"OPTIONS": {"application_name": "shop"}})
    assert parsed.application_name == "shop"


@pytest.mark.no_db
@pytest.mark.parametrize(
    "shape, mode, max_size",
    [
        (ServerShape("mod_wsgi", 2, 1), "process", 1),
        (ServerShape("mod_wsgi", 1, 8), "pool", 8),
        (ServerShape("asgi"), "pool", 10),
        (ServerShape("runserver", 1, None), "thread", 10),
        (ServerShape("other"), "thread", 10),
    ],
)
def test_auto_mode(shape, mode, max_size):
    assert resolve_mode(options(), shape)[0] == mode
    assert default_max_size(options(), shape) == max_size
    assert default_max_size(options(max_size=3), shape) == 3
    assert resolve_mode(options(mode="process"), shape) == ("process", "configured")


@pytest.mark.no_db
def test_background_housekeeping_only_for_web_servers_by_default():
    interval = environment.housekeeping_interval
    assert interval(options(), ServerShape("mod_wsgi", 2, 1)) == 30.0
    assert interval(options(), ServerShape("asgi")) == 30.0
    assert interval(options(), ServerShape("other")) is None  # commands, workers, tests
    assert interval(options(housekeeping=5), ServerShape("other")) == 5
    assert interval(options(housekeeping=0), ServerShape("mod_wsgi", 2, 1)) is None


@pytest.mark.no_db
def test_shape_outside_mod_wsgi():
    assert environment.mod_wsgi_shape() is None  # the pip package is not the daemon module
    assert environment.detect_shape(argv=["manage.py", "runserver"]) == ServerShape(
        "runserver", 1, None
    )
    assert environment.detect_shape(argv=["manage.py", "runserver", "--nothreading"]).threads == 1
    hinted = environment.detect_shape(options(processes=4, threads=2), argv=["gunicorn"])
    assert hinted == ServerShape("other", 4, 2) and hinted.threaded


def test_auto_under_asgi_becomes_a_pool(settings, persistent, monkeypatch):
    """A real ASGI request through Django's ASGIHandler switches ``auto`` to pool mode."""
    from django.core.asgi import get_asgi_application

    monkeypatch.setattr(environment, "_asgi_seen", False)
    settings.ROOT_URLCONF = "tests.backend.urls"
    application = get_asgi_application()

    async def get(path):
        sent = []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        await application(scope, receive, send)
        status = sent[0]["status"]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return status, body

    with persistent(mode="auto"):
        assert default_stats()["mode"] == "thread"  # no ASGI request seen yet
        results = [asyncio.run(get("/pid/")) for _ in range(3)]
        assert [status for status, _ in results] == [200, 200, 200]
        pids = {json.loads(body)["backend_pid"] for _, body in results}
        stats = default_stats()
    assert stats["mode"] == "pool" and "ASGI" in stats["mode_reason"]
    assert len(pids) == 1 and stats["opened"] == 1 and stats["in_use"] == 0


@pytest.mark.no_db
@pytest.mark.parametrize(
    "shape, max_size",
    [
        (ServerShape("mod_wsgi", 1, 8), 4),
        (ServerShape("mod_wsgi", 2, 16), 4),
        (ServerShape("mod_wsgi", 1, 25), 7),
        (ServerShape("mod_wsgi", 1, 4), 2),
        (ServerShape("mod_wsgi", 1, 2), 2),
        (ServerShape("asgi"), 4),
    ],
)
def test_lending_per_transaction_bounds_the_pool_at_half_to_a_quarter_of_the_threads(
    shape, max_size
):
    assert default_max_size(options(lend="transaction"), shape) == max_size
    assert default_max_size(options(lend="transaction", max_size=8), shape) == 8
