"""Test-only URLs, mounted at /_faults/ by the fault settings (site_urls.py)."""

from django.urls import path

from tests.faults.faultviews import views

DIRTY = {
    "tx-raise/": views.tx_raise,
    "tx-aborted/": views.tx_aborted,
    "tx-return/": views.tx_return,
    "autocommit-off/": views.autocommit_off,
    "atomic-raise/": views.atomic_raise,
    "set/": views.set_session,
    "set-raise/": views.set_raise,
    "temp/": views.temp_and_prepare,
    "lock/": views.lock,
    "lock-raise/": views.lock_raise,
}

urlpatterns = [
    path("pid/", views.pid),
    path("stats/", views.process_stats),
    path("sleep/", views.sleep),
    path("hold/", views.hold),
    path("state/", views.state),
    *(path(route, view) for route, view in DIRTY.items()),
]
