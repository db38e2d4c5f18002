"""dashboard.advice's rules on recorded snapshot figures: when each fires, what it says."""

import pytest

from dashboard import advice

MIB = 2**20


def proc(threads=4, busy=1.0, cpu=50.0, rss=60 * MIB, requests=1000, pool=None, held=4):
    return {
        "alive": True,
        "local": True,
        "threads": threads,
        "published_at": 1.0,
        "avg_busy_threads": busy,
        "cpu_percent": cpu,
        "rss_bytes": rss,
        "requests": {"total": requests},
        "backend": {"default": pool} if pool else None,
        "connections": {"total": held},
    }


def pool(mode="pool", max_size=4, waits=0, seconds=0.0):
    return {
        "mode": mode,
        "max_size": max_size,
        "checkout_waits": waits,
        "checkout_wait_seconds": seconds,
    }


def snapshot(procs, used=10, budget=97, site=8, pgbouncer=None):
    return {
        "processes": procs,
        "database": {
            "budget": budget,
            "used": used,
            "used_ratio": used / budget,
            "site_connections": site,
        },
        "pgbouncer": pgbouncer,
    }


def rules(snap, cores=2):
    return {line["rule"]: line for line in advice.advise(snap, cores=cores)}


@pytest.fixture(autouse=True)
def memory_budget(settings):
    settings.DASHBOARD_MEMORY_BUDGET_MIB = 1024


def test_a_quiet_site_gets_no_advice():
    assert advice.advise(snapshot([proc(busy=1.0, pool=pool(), held=2)]), cores=2) == []


def test_busy_threads_with_cpu_to_spare_ask_for_a_process():
    line = rules(snapshot([proc(busy=3.8, cpu=60.0), proc(busy=3.6, cpu=55.0)]))["busy_daemons"]
    assert line["value"] == pytest.approx(0.925)
    assert "busy 92% of the time (7.4 of 8 on average)" in line["message"]
    assert "Add a process (2 now, try 3)" in line["message"]
    assert "115% of 200% CPU and 87 connections are free" in line["message"]


def test_busy_threads_on_a_saturated_cpu_say_cpu_is_the_limit():
    line = rules(snapshot([proc(busy=3.9, cpu=95.0), proc(busy=3.9, cpu=90.0)]))["busy_daemons"]
    assert "CPU is the limit (the daemons use 185% of 200%)" in line["message"]


def test_busy_threads_without_free_connections_point_to_pgbouncer():
    snap = snapshot([proc(busy=4.0, cpu=20.0, pool=pool(max_size=4))], used=95, budget=97)
    line = rules(snap)["busy_daemons"]
    assert "Another process needs 4 connection(s) but 2 are free" in line["message"]


def test_half_busy_threads_are_fine():
    assert "busy_daemons" not in rules(snapshot([proc(busy=2.0)]))


def test_pool_waits_ask_for_a_larger_pool():
    snap = snapshot(
        [proc(threads=8, busy=2.0, requests=4000, pool=pool(max_size=2, waits=120, seconds=2.4))]
    )
    line = rules(snap)["pool_waits"]
    assert line["value"] == 120
    assert (
        "waited for a pooled connection 120 times (3.0% of 4,000 requests, 20 ms" in line["message"]
    )
    assert "raise PERSISTENT_MAX_SIZE from 2 towards the 8 threads" in line["message"]


def test_few_waits_are_not_advice_and_process_mode_is_named():
    quiet = snapshot([proc(busy=2.0, pool=pool(waits=9, seconds=1.0), requests=100)])
    assert "pool_waits" not in rules(quiet)
    process = snapshot(
        [proc(busy=2.0, requests=500, pool=pool(mode="process", max_size=1, waits=50))]
    )
    assert (
        "PERSISTENT_MODE=process holds one connection for 4 threads"
        in rules(process)["pool_waits"]["message"]
    )


def test_idle_pools_ask_for_a_smaller_max_size():
    snap = snapshot([proc(threads=8, busy=0.4, pool=pool(max_size=8), held=8) for _ in range(2)])
    line = rules(snap)["idle_connections"]
    assert line["value"] == pytest.approx(0.05)
    assert "holds 16 but requests use 0.8 on average (5%)" in line["message"]
    assert "lower PERSISTENT_MAX_SIZE from 8 to 1" in line["message"]


def test_busy_pools_and_small_pools_are_not_idle():
    busy = snapshot([proc(threads=8, busy=3.0, pool=pool(max_size=8), held=8)])
    assert "idle_connections" not in rules(busy)
    small = snapshot([proc(threads=2, busy=0.0, pool=pool(max_size=2), held=2)])
    assert "idle_connections" not in rules(small)


def test_rss_near_the_memory_budget(settings):
    settings.DASHBOARD_MEMORY_BUDGET_MIB = 200
    line = rules(snapshot([proc(busy=0.1, rss=90 * MIB), proc(busy=0.1, rss=80 * MIB)]))["memory"]
    assert line["value"] == 170 * MIB
    assert "The daemons use 170 MiB, 85% of the 200 MiB memory budget" in line["message"]
    settings.DASHBOARD_MEMORY_BUDGET_MIB = 400
    assert "memory" not in rules(snapshot([proc(busy=0.1, rss=90 * MIB)]))


def test_connection_budget_nearly_used():
    line = rules(snapshot([proc(busy=0.1)], used=85, budget=97, site=70))["connection_budget"]
    assert "85 of 97 PostgreSQL connections in use (88%), 70 held by the site" in line["message"]
    assert "put PgBouncer in front" in line["message"]
    behind = snapshot([proc(busy=0.1)], used=85, budget=97, pgbouncer={"reachable": True})
    assert "already in front" in rules(behind)["connection_budget"]["message"]
