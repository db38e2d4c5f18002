"""Points 1, 2 and 8: one backend for many requests, nothing extra sent, identified."""

import os
import socket

import pytest
from django.db import connection

from catalog.models import Item
from persistent_backend.deployment import application_name
from tests.backend.conftest import default_stats

MODES = ["process", "thread", "pool"]


@pytest.mark.parametrize("mode", MODES)
def test_1000_requests_use_one_backend(site, persistent, observer, own_application_name, mode):
    with persistent(mode=mode):
        pids = {site.json("/pid/")["backend_pid"] for _ in range(1000)}
        assert len(pids) == 1, pids
        (backend_pid,) = pids
        # Seen from the server: this process holds exactly that one session.
        sessions = observer.backends(own_application_name)
        assert [row[0] for row in sessions] == [backend_pid]
        assert sessions[0][2] == "idle"
        stats = default_stats()
        assert stats["mode"] == mode
        assert stats["opened"] == 1
        assert stats["requests"] == 1000 and stats["reuses"] == 999
        assert [c["backend_pid"] for c in stats["connections"]] == [backend_pid]


@pytest.mark.parametrize("mode", MODES)
def test_reuse_sends_no_extra_statement(page_site, persistent, observer, demo_data, mode):
    """Counted by the server (pg_stat_statements): only the page's own 4 SELECTs."""
    observer.statements_enabled()
    item_id = Item.objects.order_by("id").first().id
    with persistent(mode=mode):
        page_site.get(f"/items/{item_id}/")  # opens the connection (and sets it up)
        observer.reset_statements()
        requests = 200
        for _ in range(requests):
            page_site.get(f"/items/{item_id}/")
        statements = observer.statements()
        assert default_stats()["opened"] == 1
    total = sum(calls for _, calls in statements)
    assert total == 4 * requests, statements
    texts = " ".join(query for query, _ in statements).upper()
    for extra in ("SELECT 1", "SET ", "BEGIN", "ROLLBACK", "COMMIT", "DISCARD"):
        assert extra not in texts, statements


def test_dead_connection_is_detected_without_a_round_trip(site, persistent, observer):
    """Terminated between requests: the checkout probe sees it; no query fails."""
    observer.statements_enabled()
    with persistent(mode="thread"):
        first = site.json("/pid/")["backend_pid"]
        observer.query("SELECT pg_terminate_backend(%s, 10000)", [first])
        observer.reset_statements()
        second = site.json("/pid/")["backend_pid"]
        assert second != first
        stats = default_stats()
        assert stats["reconnects"]["terminated"] == 1
        assert stats["opened"] == 2
    # The only statement after the kill is the view's own query, on the new backend.
    assert [calls for query, calls in observer.statements() if "pg_backend_pid" in query] == [1]


def test_application_name_and_backend_pid(site, persistent, observer):
    with persistent(mode="pool", application_name="shop"):
        backend_pid = site.json("/pid/")["backend_pid"]
        ((name,),) = observer.query(
            "SELECT application_name FROM pg_stat_activity WHERE pid = %s", [backend_pid]
        )
        stats = default_stats()
    prefix, host, pid = name.rsplit(":", 2)
    assert prefix == "shop" and pid == str(os.getpid()) and host
    assert stats["connections"][0]["backend_pid"] == backend_pid
    assert stats["connections"][0]["application_name"] == name


@pytest.mark.no_db
@pytest.mark.parametrize(
    "prefix, host",
    [
        ("site", "web1"),
        ("site", "h" * 80),
        ("a-very-long-prefix-" * 3, "host-" * 10),
        ("p" * 70, "h"),
    ],
)
def test_application_name_fits_postgresql_limit(prefix, host):
    name = application_name(prefix, 4194304, host=host)
    assert len(name.encode()) <= 63
    assert name.endswith(":4194304")
    head, cut_host, pid = name.rsplit(":", 2)
    assert pid == "4194304"
    if len(prefix) + 9 < 63:
        assert head == prefix and host.startswith(cut_host)


@pytest.mark.parametrize("override", [None, 7])
def test_keepalive_defaults_reach_the_socket(persistent, override):
    """A read-only probe cannot see a silent peer: the kernel's keepalives can."""
    options = connection.settings_dict["OPTIONS"]
    if override:
        options["keepalives_idle"] = override
    try:
        with persistent(mode="thread"):
            connection.ensure_connection()
            sock = socket.socket(fileno=os.dup(connection.connection.fileno()))
            try:
                values = [
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                ]
            finally:
                sock.close()  # the duplicate only
    finally:
        options.pop("keepalives_idle", None)
    assert values == [1, override or 30, 10, 3, 30000]
