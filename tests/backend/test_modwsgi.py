"""End to end under mod_wsgi-express: backends held after 500 requests, kills, restarts.

Backends are counted by the server: pg_stat_activity grouped by application_name
(``site:<host>:<daemon pid>``).
"""

from concurrent.futures import ThreadPoolExecutor

from catalog.models import Item
from harness.modwsgi import get

REQUESTS = 500


def item_path(django_db_blocker):
    with django_db_blocker.unblock():
        return f"/items/{Item.objects.order_by('id').first().id}/"


def hammer(server, path, count, concurrency):
    """``count`` GETs from ``concurrency`` client threads; returns the status codes."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: get(server.url + path, timeout=30)[0], range(count)))


def daemon_backends(observer, server):
    """{application_name: backends} of the server's daemon processes."""
    pids = {str(pid) for pid in server.daemon_pids()}
    return {
        name: count
        for name, count in observer.by_application_name("site:").items()
        if name.rsplit(":", 1)[1] in pids
    }


def error_log(server):
    path = server.server_root / "error_log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_prefork_2x1(live_site, observer, controllable_cluster, django_db_blocker):
    """processes=2 threads=1: auto picks process mode; at most 2 backends; no 500 ever."""
    path = item_path(django_db_blocker)
    server = live_site(processes=2, threads=1)
    statuses = hammer(server, path, REQUESTS, concurrency=4)
    assert statuses == [200] * REQUESTS, server.logs()
    held = daemon_backends(observer, server)
    assert len(held) == 2 and set(held.values()) == {1}, held  # one backend per process
    assert error_log(server).count("process mode (auto: mod_wsgi daemon with 1 thread(s)") == 2

    # Every site session killed by the server: the next requests on both processes work.
    before = {row[0] for row in observer.backends()}
    assert len(observer.terminate()) >= 2
    assert hammer(server, path, 40, concurrency=4) == [200] * 40, server.logs()
    after = daemon_backends(observer, server)
    assert len(after) == 2, after
    assert not before & {row[0] for row in observer.backends()}

    # A PostgreSQL restart: still no error on any process.
    controllable_cluster.restart()
    assert hammer(server, path, 40, concurrency=4) == [200] * 40, server.logs()
    assert len(daemon_backends(observer, server)) == 2

    # Down: fast 503s with a clear page; back: recovers by itself.
    controllable_cluster.stop()
    for status, body, _ in [get(server.url + path, timeout=30) for _ in range(4)]:
        assert status == 503, body
        assert "database is unavailable" in body and "Traceback" not in body
    controllable_cluster.start()
    controllable_cluster.wait_ready()
    assert hammer(server, path, 40, concurrency=4) == [200] * 40, server.logs()


def test_threaded_1x8(live_site, observer, controllable_cluster, django_db_blocker):
    """processes=1 threads=8: auto picks a pool; at most 8 backends, fewer when idle-ish."""
    path = item_path(django_db_blocker)
    server = live_site(processes=1, threads=8)
    statuses = hammer(server, path, REQUESTS, concurrency=8)
    assert statuses == [200] * REQUESTS, server.logs()
    held = daemon_backends(observer, server)
    assert len(held) == 1 and sum(held.values()) <= 8, held
    assert "pool mode (auto: mod_wsgi daemon with 8 thread(s) per process), max_size 8" in (
        error_log(server)
    )

    # Two clients at a time: the pool stays small (not 8). mod_wsgi sends the response
    # before request_finished returns the connection, so a client's next request, taken
    # by another thread, can overlap that return by a moment: at most one more.
    observer.terminate()
    assert hammer(server, path, REQUESTS, concurrency=2) == [200] * REQUESTS, server.logs()
    assert sum(daemon_backends(observer, server).values()) <= 3

    controllable_cluster.restart()
    assert hammer(server, path, 40, concurrency=8) == [200] * 40, server.logs()


def test_process_mode_in_threaded_daemon_is_reported_and_still_safe(
    live_site, observer, django_db_blocker
):
    path = item_path(django_db_blocker)
    server = live_site(processes=1, threads=4, PERSISTENT_MODE="process")
    assert hammer(server, path, 100, concurrency=4) == [200] * 100, server.logs()
    assert sum(daemon_backends(observer, server).values()) == 1
    log = error_log(server)
    assert "persistent_backend.E002" in log and "runs 4 threads per process" in log
