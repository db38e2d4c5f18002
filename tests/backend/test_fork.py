"""Point 4: a connection opened before os.fork() is never used, nor closed, by the child."""

import json
import os
import traceback

import pytest
from django.db import connection

import persistent_backend
from persistent_backend import registry
from tests.backend.conftest import default_stats

# Python >= 3.12 warns when forking a process with threads (the test process may run the
# dashboard's publisher thread); the children here only run the code under test.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


def one(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def in_child(work):
    """Run ``work()`` in a forked child; return what it returned (JSON) or raise its error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_fd)
            try:
                payload = {"ok": work()}
            except BaseException:
                payload = {"error": traceback.format_exc()}
                code = 1
            with os.fdopen(write_fd, "w") as pipe:
                pipe.write(json.dumps(payload))
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        payload = json.loads(pipe.read() or '{"error": "child wrote nothing"}')
    _, status = os.waitpid(pid, 0)
    assert "error" not in payload, payload["error"]
    assert os.waitstatus_to_exitcode(status) == 0
    return payload["ok"]


def test_child_never_uses_a_connection_held_at_fork(persistent, observer):
    with persistent(mode="thread"):
        parent_backend = one("SELECT pg_backend_pid()")  # held by this thread's wrapper

        def child():
            backend = one("SELECT pg_backend_pid()")
            application = one("SELECT current_setting('application_name')")
            stats = default_stats()
            # Closing everything in the child must not touch the parent's session.
            connection.close()
            persistent_backend.close_all()
            return {
                "backend": backend,
                "application_name": application,
                "fork": stats["reconnects"]["fork"],
                "pid": os.getpid(),
            }

        result = in_child(child)
        assert result["backend"] != parent_backend
        assert result["application_name"].endswith(f":{result['pid']}")
        assert result["fork"] == 1
        # The parent's connection is intact: same backend, still usable, still on the server.
        assert one("SELECT pg_backend_pid()") == parent_backend
        assert parent_backend in [row[0] for row in observer.backends()]


def test_child_never_uses_a_kept_idle_connection(site, persistent, observer):
    with persistent(mode="pool", max_size=2):
        parent_backend = site.json("/pid/")["backend_pid"]  # now idle in the pool
        assert default_stats()["idle"] == 1

        def child():
            backends = [site.json("/pid/")["backend_pid"] for _ in range(3)]
            stats = default_stats()
            registry.reset()
            return {"backends": backends, "opened": stats["opened"], "pid": os.getpid()}

        result = in_child(child)
        assert len(set(result["backends"])) == 1
        assert result["backends"][0] != parent_backend
        assert result["opened"] == 1
        # The parent reuses its kept connection: the child did not close it.
        assert site.json("/pid/")["backend_pid"] == parent_backend
        assert default_stats()["reconnects"] == dict.fromkeys(
            ["terminated", "closed", "broken", "ping_failed", "fork"], 0
        )
        assert parent_backend in [row[0] for row in observer.backends()]


def test_inherited_socket_is_pointed_at_devnull(persistent):
    """What the child sees: the inherited socket now reads EOF / writes to /dev/null."""
    with persistent(mode="thread"):
        one("SELECT 1")
        fd = connection.connection.fileno()

        def child():
            return os.readlink(f"/proc/self/fd/{fd}")

        assert in_child(child) == os.devnull
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")


def test_pid_change_without_at_fork_hooks_is_caught_at_the_next_cursor(persistent):
    """A fork() that bypassed Python's hooks (C-level): the next cursor notices the pid."""
    with persistent(mode="thread"):
        first = one("SELECT pg_backend_pid()")
        connection._connection_pid = -1  # as if this handle came from another process
        second = one("SELECT pg_backend_pid()")
        stats = default_stats()
    assert second != first
    assert stats["reconnects"]["fork"] == 1 and stats["opened"] == 2
