"""Views for the persistent_backend tests (ROOT_URLCONF = "tests.backend.urls").

They run in-process through Django's real WSGIHandler (see conftest.InProcessSite), so
request_started / request_finished fire exactly as under a server.
"""

import threading

from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from django.urls import path

import persistent_backend
from catalog.models import Category
from tests.backend import pinviews

# The thread stress test's shared state: backend pid -> token of the request using it.
exclusive_lock = threading.Lock()
exclusive_busy = {}
exclusive_violations = []
# The checkout-wait tests: /hold/ keeps its connection until `release_hold` is set.
hold_started = threading.Event()
release_hold = threading.Event()


def one_value(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def pid(request):
    backend_pid = one_value("SELECT pg_backend_pid()")
    return JsonResponse(
        {"backend_pid": backend_pid, "info": persistent_backend.current_connection_info()}
    )


def exclusive(request):
    """Proves, server-side, that no other request uses this backend meanwhile."""
    token = f"{threading.get_ident()}:{request.GET.get('n', '')}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), set_config('pb.owner', %s, false)", [token])
        backend_pid = cursor.fetchone()[0]
        with exclusive_lock:
            other = exclusive_busy.get(backend_pid)
            if other is not None:
                exclusive_violations.append((backend_pid, other, token))
            exclusive_busy[backend_pid] = token
        for _ in range(3):
            cursor.execute("SELECT current_setting('pb.owner'), pg_backend_pid()")
            owner, again = cursor.fetchone()
            if owner != token or again != backend_pid:
                exclusive_violations.append((backend_pid, owner, token))
        with exclusive_lock:
            exclusive_busy.pop(backend_pid, None)
    return HttpResponse(str(backend_pid))


def leak(request):
    """Opens a transaction by hand (in autocommit mode), writes, and raises."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
        cursor.execute("INSERT INTO catalog_category (name, slug) VALUES ('leaked', 'leaked')")
    if request.GET.get("quiet"):
        return HttpResponse(str(backend_pid))
    raise RuntimeError(f"boom after BEGIN on backend {backend_pid}")


def leak_error(request):
    """A failed statement inside a hand-opened transaction: 'idle in transaction (aborted)'."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute("SELECT 1/0")
        except Exception:
            pass
    raise RuntimeError("boom in an aborted transaction")


def autocommit_off(request):
    transaction.set_autocommit(False)
    Category.objects.create(name="uncommitted", slug="uncommitted")
    raise RuntimeError("boom with autocommit off")


def atomic_raise(request):
    with transaction.atomic():
        Category.objects.create(name="atomic", slug="atomic")
        raise RuntimeError("boom inside atomic")


def create_category(request):
    Category.objects.create(name=request.GET["name"], slug=request.GET["name"])
    if request.GET.get("fail"):
        raise RuntimeError("boom after a write")
    return HttpResponse("created")


def set_state(request):
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '1234ms'")
        cursor.execute("CREATE TEMP TABLE pb_temp (x int)")
        cursor.execute("SELECT pg_advisory_lock(4242)")
        cursor.execute("PREPARE pb_statement AS SELECT 1")
        cursor.execute("SELECT pg_backend_pid()")
        return HttpResponse(str(cursor.fetchone()[0]))


def get_state(request):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), current_setting('statement_timeout'), "
            "to_regclass('pg_temp.pb_temp') IS NOT NULL, "
            "(SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
            " AND locktype = 'advisory'), "
            "(SELECT count(*) FROM pg_prepared_statements WHERE name = 'pb_statement'), "
            "current_setting('TimeZone')"
        )
        row = cursor.fetchone()
    keys = ["backend_pid", "statement_timeout", "temp_table", "advisory_locks", "prepared"]
    return JsonResponse({**dict(zip(keys, row[:5], strict=True)), "timezone": row[5]})


def kill_self(request):
    one_value("SELECT pg_terminate_backend(pg_backend_pid())")
    return HttpResponse("unreachable")


def hold(request):
    one_value("SELECT 1")
    hold_started.set()
    release_hold.wait(30)
    return HttpResponse("held")


def iterate(request):
    names = [c.name for c in Category.objects.order_by("id").iterator(chunk_size=2)]
    return HttpResponse(",".join(names))


urlpatterns = [
    path("pid/", pid),
    path("exclusive/", exclusive),
    path("leak/", leak),
    path("leak-error/", leak_error),
    path("autocommit-off/", autocommit_off),
    path("atomic-raise/", atomic_raise),
    path("create/", create_category),
    path("set-state/", set_state),
    path("get-state/", get_state),
    path("kill-self/", kill_self),
    path("hold/", hold),
    path("iterate/", iterate),
    path("state-then-kill/<str:kind>/", pinviews.state_then_kill),
    path("run-once/<str:kind>/", pinviews.run_once),
    path("sleep/", pinviews.sleep),
    path("atomic-sleep/", pinviews.atomic_sleep),
]
