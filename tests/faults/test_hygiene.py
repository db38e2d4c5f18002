"""Fault 6: views that raise inside a transaction, leave one open, SET, lock, LISTEN.

Afterwards pg_stat_activity shows no ``idle in transaction`` session of the site, every
later request starts in a transaction of its own, and no session state (settings, time
zone, temporary tables, prepared statements, advisory locks, LISTEN) reaches the next
request: with ``reset: discard`` every connection is reset; with ``reset: rollback`` (the
default) a request that set session state is pinned and its connection reset
(docs/guarantees.md). Each leaked transaction is logged with the path that leaked it.
"""

import json
import time

import pytest

from harness.load import Load, request
from harness.waiting import wait_until
from tests.faults import harness

# Dirty view -> the status it answers with (500: it raises on purpose).
TRANSACTION_VIEWS = {
    "/_faults/tx-raise/": 500,
    "/_faults/tx-aborted/": 500,
    "/_faults/tx-return/": 200,
    "/_faults/autocommit-off/": 500,
    "/_faults/atomic-raise/": 500,
}
SESSION_VIEWS = {
    "/_faults/set/": 200,
    "/_faults/set-raise/": 500,
    "/_faults/temp/": 200,
    "/_faults/lock/": 200,
    "/_faults/lock-raise/": 500,
}
LEAKING = ("/_faults/tx-raise/", "/_faults/tx-aborted/", "/_faults/tx-return/")
STATE = "/_faults/state/"
CLEAN = {
    "marker": "",
    "statement_timeout": "0",
    "timezone": "UTC",
    "temp_tables": 0,
    "prepared": 0,
    "listening": 0,
    "advisory_locks": 0,
    "own_transaction": True,
    "autocommit": True,
}


def dirty_views(reset):
    return {**TRANSACTION_VIEWS, **SESSION_VIEWS}  # clean with either reset


def mix(reset, pages=()):
    """Each dirty view followed by a state probe (and a page), repeated by the load."""
    paths = []
    for n, path in enumerate(dirty_views(reset)):
        paths += [path, STATE]
        if pages:
            paths.append(pages[n % len(pages)])
    return paths


def dirt(result, keys=tuple(CLEAN)):
    """What a state probe found that a fresh connection would not have ({} = clean)."""
    state = json.loads(result.body)
    return {key: state.get(key) for key in keys if state.get(key) != CLEAN[key]}


def no_idle_in_transaction(site_db):
    """True once no site session is idle in transaction, and it stays so for 0.5 s."""
    for _ in range(5):
        if any((s["state"] or "").startswith("idle in transaction") for s in site_db.sessions()):
            return False
        time.sleep(0.1)
    return True


def probe_every_connection(server):
    """State probes, as many at once as the site has threads (every pooled connection)."""
    capacity = server.variant.capacity
    load = Load(server.url, [STATE], capacity * 6, concurrency=capacity, keep_bodies=True)
    return load.run()


def run_hygiene(server, site_db, figures, *, reset, total, pages=()):
    dirty = dirty_views(reset)
    keys = tuple(CLEAN)
    load = Load(
        server.url,
        mix(reset, pages),
        total,
        concurrency=server.variant.capacity,
        keep_bodies=True,
        deadline=300,
    )
    results = load.run()
    origin = load.started_at
    assert load.sent == total

    # Every dirty view answered as designed; nothing else failed.
    wrong = [r for r in results if r.path in dirty and r.status != dirty[r.path]]
    assert not wrong, harness.explain(wrong, origin)
    others = [r for r in results if r.path not in dirty]
    failed = harness.failures(others)
    assert not failed, harness.explain(failed, origin)

    # No site session is left idle in transaction, and none was leaked.
    wait_until(lambda: no_idle_in_transaction(site_db), timeout=15, what="no idle-in-transaction")
    assert len(site_db.sessions()) <= server.variant.capacity, site_db.sessions()

    # The probes made right after each dirty request, then every connection: clean.
    probes = [r for r in results if r.path == STATE] + probe_every_connection(server)
    assert all(p.ok for p in probes), harness.explain(harness.failures(probes), origin)
    found = [(p.pid, dirt(p, keys)) for p in probes if dirt(p, keys)]
    assert not found, f"{len(found)} of {len(probes)} probes found state: {found[:10]}"

    # Each leaked transaction was rolled back and logged with the path that leaked it.
    logs = harness.error_log(server)
    for path in LEAKING:
        assert f"rolled back a transaction left open by {path}" in logs, (path, logs[-3000:])

    deliberate = sum(1 for r in results if r.path in dirty and r.status == 500)
    figures(
        harness.Row.from_results(
            "6",
            f"{server.variant.label}, reset {reset}",
            others,
            notes=[
                f"+{sum(1 for r in results if r.path in dirty)} dirty requests "
                f"({deliberate} deliberate 500s, not counted)",
                f"{len(probes)} state probes clean, 0 idle in transaction",
            ],
        )
    )
    return results


@pytest.mark.short
def test_hygiene_pool_discard(fault_site, site_db, figures):
    server = fault_site("threaded", PERSISTENT_RESET="discard")
    run_hygiene(server, site_db, figures, reset="discard", total=240)


@pytest.mark.short
def test_hygiene_process_rollback(fault_site, site_db, figures):
    server = fault_site("prefork", PERSISTENT_RESET="rollback")
    run_hygiene(server, site_db, figures, reset="rollback", total=120)
    assert_set_is_reset_on_the_same_connection(server)


@pytest.mark.long
@pytest.mark.parametrize("reset", ["discard", "rollback"])
@pytest.mark.parametrize("variant", ["prefork", "threaded"])
def test_hygiene_under_load(fault_site, site_db, pages, figures, variant, reset):
    server = fault_site(variant, PERSISTENT_RESET=reset)
    run_hygiene(server, site_db, figures, reset=reset, total=3000, pages=pages)
    if variant == "prefork" and reset == "rollback":
        assert_set_is_reset_on_the_same_connection(server)


def assert_set_is_reset_on_the_same_connection(server):
    """With reset rollback, a SET pins its request: the next request on the same kept
    connection (process mode: one per process) finds the session clean."""
    dirty = request(server.url, "/_faults/set/")
    assert dirty.ok, dirty.text[:500]
    for _ in range(50):
        probe = request(server.url, STATE)
        if probe.pid == dirty.pid:
            break
    assert probe.pid == dirty.pid, "no probe reached the process that ran SET"
    assert dirt(probe) == {}
