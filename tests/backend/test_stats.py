"""Point 9: stats() and current_connection_info(), the interface the dashboard reads."""

import json
import os
import threading

import persistent_backend
from tests.backend.conftest import default_stats

REQUIRED = {
    "mode", "pid", "opened", "reuses", "requests", "reconnects", "recycles",
    "leaked_transactions", "checkout_waits", "checkout_wait_seconds", "checkout_timeouts",
    "in_use", "idle", "size", "max_size", "connections",
}  # fmt: skip


def test_stats_keys_and_values(site, persistent):
    with persistent(mode="pool", max_size=4):
        for _ in range(5):
            site.get("/pid/")
        stats = persistent_backend.stats()
    assert set(stats) == {"default"}
    default = stats["default"]
    assert REQUIRED <= set(default)
    assert json.loads(json.dumps(stats)) == stats  # plain JSON
    assert default["mode"] == "pool" and default["pid"] == os.getpid()
    assert (default["opened"], default["reuses"], default["requests"]) == (1, 4, 5)
    assert default["reconnects"] == {
        "terminated": 0, "closed": 0, "broken": 0, "ping_failed": 0, "fork": 0,
    }  # fmt: skip
    assert default["recycles"] == {"age": 0, "uses": 0, "idle": 0}
    assert (default["in_use"], default["idle"], default["size"], default["max_size"]) == (
        0, 1, 1, 4,
    )  # fmt: skip
    (conn,) = default["connections"]
    assert {"backend_pid", "age_seconds", "uses", "in_use"} <= set(conn)
    assert conn["uses"] == 5 and conn["in_use"] is False
    assert default["connect_seconds"] > 0


def test_stats_before_any_query_and_from_another_thread(persistent):
    with persistent(mode="thread"):
        results = []
        thread = threading.Thread(target=lambda: results.append(persistent_backend.stats()))
        thread.start()
        thread.join()
    default = results[0]["default"]
    assert default["mode"] == "thread"
    assert default["opened"] == 0 and default["size"] == 0 and default["connections"] == []


def test_current_connection_info(site, persistent):
    with persistent(mode="process"):
        first = site.json("/pid/")["info"]
        second = site.json("/pid/")["info"]
        # After the request the connection went back, but the info is still there...
        after = persistent_backend.current_connection_info()
        # ...until the next request starts; one without a query reports None.
        site.request("/nowhere/")
        none = persistent_backend.current_connection_info()
    assert first["reused"] is False and first["uses"] == 1
    assert second["reused"] is True and second["uses"] == 2
    assert second["backend_pid"] == first["backend_pid"]
    assert {"reused", "age_seconds", "uses", "backend_pid"} <= set(first)
    assert after["backend_pid"] == first["backend_pid"] and after["held"] is False
    assert none is None
    assert persistent_backend.current_connection_info("no-such-alias") is None


def test_ping_after_pings_only_long_idle_connections(site, persistent):
    from persistent_backend import registry

    with persistent(mode="process", ping_after=300, idle_timeout=None):
        site.get("/pid/")
        site.get("/pid/")
        assert default_stats()["pings"] == 0
        (record,) = registry.stores()[0].records
        record.last_used -= 301
        info = site.json("/pid/")["info"]
        stats = default_stats()
    assert stats["pings"] == 1 and info["reused"] is True and stats["opened"] == 1
