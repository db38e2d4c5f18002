"""Sizing: the rules, and the connection budget read from a real PostgreSQL (max_connections=20).

Budget of the small cluster: 20 - 3 superuser_reserved_connections - 0 reserved
- others - 2 spare = 15 usable while nobody else is connected.
"""

import math
import re
import shlex

import pytest

from apache_conf import pgprobe
from apache_conf.frontend import Frontend
from apache_conf.sizing import (
    Budget,
    Machine,
    Shape,
    SizingError,
    default_shape,
    fit,
    plan,
)
from harness.net import free_port
from tests.apache_conf.conftest import SMALL_MAX_CONNECTIONS

COMMON = "--cores 4 --memory-gib 8 --server-name example.com"
SIZING = "apache_conf"  # python -m apache_conf shape ...
USABLE = SMALL_MAX_CONNECTIONS - 3 - 2


def proposal(stderr):
    """The first proposed flags of a refusal: ``fits: --variant X --processes N --threads T``."""
    match = re.search(r"fits: (--variant \S+ --processes \d+ --threads \d+)", stderr)
    assert match, stderr
    return shlex.split(match.group(1))


def header(path):
    return [line for line in path.read_text().splitlines() if line.startswith("#")]


# --- the rules, on fixed inputs ----------------------------------------------------------
@pytest.mark.parametrize(
    "cores, prefork, threaded, hybrid",
    [
        (1, (2, 1), (1, 4), (2, 4)),
        (2, (2, 1), (1, 4), (2, 4)),
        (4, (4, 1), (1, 8), (2, 4)),
        (16, (16, 1), (1, 15), (8, 4)),
    ],
)
def test_machine_defaults(cores, prefork, threaded, hybrid):
    machine = Machine(cores=cores, memory_bytes=64 * 1024**3)
    for variant, expected in [("prefork", prefork), ("threaded", threaded), ("hybrid", hybrid)]:
        shape = default_shape(variant, machine)
        assert (shape.processes, shape.threads) == expected, variant


def test_memory_caps_processes():
    machine = Machine(cores=16, memory_bytes=1024**3)  # 512 MiB for daemons: 4 x 128 MiB
    assert machine.max_processes == 4
    assert default_shape("prefork", machine).processes == 4


def test_connections_per_process_follow_the_backend_mode():
    assert Shape("prefork", 4, 1).connections(hosts=2) == 8  # process mode: 1 each
    assert Shape("threaded", 1, 8).connections(hosts=2) == 16  # pool: max_size = threads
    assert Shape("hybrid", 3, 4).connections(hosts=2) == 24
    assert [Shape(v, 1, 1).mode for v in ("prefork", "threaded", "hybrid")] == [
        "process",
        "pool",
        "pool",
    ]


def test_shapes_that_contradict_their_variant_are_refused():
    with pytest.raises(SizingError, match="prefork runs one thread"):
        Shape("prefork", 2, 4)
    with pytest.raises(SizingError, match="threaded runs one process"):
        Shape("threaded", 2, 4)


def test_fit_keeps_the_variant_and_drops_processes_first():
    assert fit(Shape("prefork", 30, 1), usable=15) == Shape("prefork", 15, 1)
    assert fit(Shape("hybrid", 4, 4), usable=15) == Shape("hybrid", 3, 4)
    assert fit(Shape("hybrid", 4, 4), usable=3) == Shape("hybrid", 1, 3)
    assert fit(Shape("threaded", 1, 8), usable=15, hosts=3) == Shape("threaded", 1, 5)
    assert fit(Shape("prefork", 2, 1), usable=1, hosts=2) is None


def test_machine_defaults_are_sized_down_but_explicit_numbers_are_refused():
    machine = Machine(cores=8, memory_bytes=8 * 1024**3)
    budget = Budget(max_connections=20)
    sized = plan("threaded", machine, budget, hosts=2)
    assert (sized.shape.threads, sized.needed) == (7, 14) and "sized down" in sized.note
    with pytest.raises(SizingError) as refused:
        plan("threaded", machine, budget, hosts=2, threads=15)
    assert "needs 30 PostgreSQL connections" in str(refused.value)
    assert any("--threads 7" in line for line in refused.value.details)
    forced = plan("threaded", machine, budget, hosts=2, threads=15, force=True)
    assert forced.over_budget and "--force" in forced.note


@pytest.mark.parametrize("capacity", [1, 2, 4, 8, 15, 16, 40, 64, 200])
def test_frontend_fits_the_daemons(capacity):
    front = Frontend.for_capacity(capacity)
    workers = front.max_request_workers
    assert workers >= 10 + max(10, math.ceil(1.5 * capacity)) >= capacity
    assert workers == front.server_limit * front.threads_per_child
    assert front.server_limit >= 2 and front.start_servers <= front.server_limit
    # What the event MPM wants to avoid AH10159 and its own adjustment of MaxSpareThreads.
    assert front.min_spare_threads < workers
    assert front.max_spare_threads >= front.min_spare_threads + front.threads_per_child


# --- against a real PostgreSQL with max_connections=20 -----------------------------------
def test_probe_reads_the_budget_and_counts_other_connections(small_pg):
    url = small_pg.url()
    facts = pgprobe.probe(url)
    assert (facts.max_connections, facts.superuser_reserved, facts.reserved) == (20, 3, 0)
    assert facts.others == 0 and facts.role_limit == -1 and facts.database_limit == -1
    held = [small_pg.connect() for _ in range(3)]
    try:
        assert pgprobe.probe(url).others == 3
    finally:
        for conn in held:
            conn.close()


def test_the_sites_own_sessions_are_not_others(small_pg, monkeypatch):
    """Resizing a live site: its daemons' connections (application_name "site:<host>:<pid>",
    or PERSISTENT_APPLICATION_NAME's prefix) are about to be replaced, not kept."""
    url = small_pg.url()
    monkeypatch.delenv("PERSISTENT_APPLICATION_NAME", raising=False)
    monkeypatch.setenv("DJANGO_ENV_FILE", "/dev/null")
    held = [
        small_pg.connect(application_name=name)
        for name in ("site:web1:101", "site:web1:102", "shop:web1:7", "psql", "site-admin")
    ]
    try:
        assert pgprobe.probe(url).others == 3  # shop:..., psql, site-admin
        monkeypatch.setenv("PERSISTENT_APPLICATION_NAME", "shop")
        assert pgprobe.probe(url).others == 4
    finally:
        for conn in held:
            conn.close()


def test_over_budget_is_refused_with_numbers_and_a_proposal_that_fits(small_pg, generate, tmp_path):
    url = small_pg.url()
    out = tmp_path / "refused"
    result = generate(f"--variant prefork --processes 30 --database-url {url} --out {out}", COMMON)
    assert result.returncode == 2, result.stdout + result.stderr
    why, numbers, fits = result.stderr.strip().splitlines()
    assert why == (
        f"apache_conf: refused: prefork needs 30 PostgreSQL connections (30 x 1 per process x "
        f"1 host) but only {USABLE} are usable"
    )
    assert "max_connections 20 - superuser_reserved_connections 3" in numbers
    assert numbers.endswith(f"used by others 0 - spare 2 = {USABLE}")
    assert f"raise max_connections to {20 + 30 - USABLE}" in fits
    assert not out.exists(), "nothing is written when refused"

    flags = proposal(result.stderr)
    assert flags == ["--variant", "prefork", "--processes", str(USABLE), "--threads", "1"]
    ok = generate(*flags, f"--database-url {url} --out {out}", COMMON)
    assert ok.returncode == 0, ok.stderr
    lines = header(out / "prefork.conf")
    assert (
        f"#   needed = {USABLE} processes x 1 connection per process (PERSISTENT_MODE=process)"
        f" x 1 host = {USABLE} <= {USABLE} usable"
    ) in lines
    assert f"processes={USABLE} threads=1 \\" in (out / "prefork.conf").read_text()


def test_force_writes_an_over_budget_config_and_says_so(small_pg, generate, tmp_path):
    result = generate(
        "--variant hybrid --processes 4 --threads 4 --force",
        f"--database-url {small_pg.url()} --out {tmp_path}",
        COMMON,
    )
    assert result.returncode == 0, result.stderr
    lines = header(tmp_path / "hybrid.conf")
    needed = "#   needed = 4 processes x 4 connections per process (PERSISTENT_MODE=pool) x 1 host"
    assert f"{needed} = 16 > {USABLE} usable" in lines
    assert any("written anyway (--force)" in line for line in lines)


@pytest.mark.parametrize(
    "args, hosts, expected",
    [
        ("--variant threaded --threads 8", 3, "--threads 5"),
        ("--variant hybrid --processes 4 --threads 4", 1, "--processes 3 --threads 4"),
    ],
    ids=["threaded-3-hosts", "hybrid"],
)
def test_hosts_and_pools_multiply_the_connections(
    small_pg, generate, tmp_path, args, hosts, expected
):
    common = [f"--hosts {hosts} --database-url {small_pg.url()} --out {tmp_path}", COMMON]
    result = generate(args, *common)
    assert result.returncode == 2
    assert result.stderr.startswith("apache_conf: refused:")
    assert expected in " ".join(proposal(result.stderr))
    ok = generate(*proposal(result.stderr), *common)
    assert ok.returncode == 0, ok.stderr


def test_connections_used_by_others_shrink_the_budget(small_pg, generate, tmp_path):
    held = [small_pg.connect() for _ in range(5)]
    try:
        result = generate(
            f"--variant prefork --processes {USABLE} --database-url {small_pg.url()}",
            f"--out {tmp_path}",
            COMMON,
        )
    finally:
        for conn in held:
            conn.close()
    assert result.returncode == 2
    assert f"used by others 5 - spare 2 = {USABLE - 5}" in result.stderr
    assert proposal(result.stderr)[3] == str(USABLE - 5)


def test_machine_defaults_shrink_to_fit_with_a_note(small_pg, generate, tmp_path):
    result = generate(
        "--variant threaded --hosts 2 --cores 8 --memory-gib 8 --server-name example.com",
        f"--database-url {small_pg.url()} --out {tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert "sized down from 1 x 15 to fit the budget" in result.stderr
    assert "processes=1 threads=7 \\" in (tmp_path / "threaded.conf").read_text()


def test_unreachable_postgresql_needs_max_connections(generate, tmp_path):
    url = f"postgres://postgres@127.0.0.1:{free_port()}/site"
    result = generate(f"--database-url {url} --out {tmp_path} --server-name example.com")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "PostgreSQL unreachable at 127.0.0.1" in result.stderr
    assert "pass --max-connections N" in result.stderr
    assert not any(tmp_path.iterdir())

    result = generate(
        f"--database-url {url} --max-connections 50 --out {tmp_path} --server-name example.com"
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "PostgreSQL unreachable" in result.stderr and "using --max-connections 50" in (
        result.stderr
    )
    written = (tmp_path / "prefork.conf").read_text()
    assert "max_connections 50 (given; server unreachable)" in written


# --- the local mod_wsgi-express shape, for deploy.sh -------------------------------------
@pytest.mark.parametrize(
    "args, line",
    [
        ("--variant prefork --cores 2", "PROCESSES=2 THREADS=1 PERSISTENT_MODE=process"),
        ("--variant threaded --cores 2", "PROCESSES=1 THREADS=4 PERSISTENT_MODE=pool"),
        ("--variant hybrid --cores 2", "PROCESSES=2 THREADS=4 PERSISTENT_MODE=pool"),
        (
            "--variant hybrid --processes 3 --threads 2",
            "PROCESSES=3 THREADS=2 PERSISTENT_MODE=pool",
        ),
    ],
)
def test_sizing_shell_line(small_pg, generate, args, line):
    result = generate("shape", args, f"--database-url {small_pg.url()}", module=SIZING)
    assert result.returncode == 0, result.stderr
    assert result.stdout == line + "\n"


def test_sizing_shell_defaults_to_this_machine_and_refuses_over_budget(small_pg, generate):
    expected = plan("prefork", Machine.detect(), Budget(SMALL_MAX_CONNECTIONS)).shape.shell()
    url = small_pg.url()
    result = generate(f"shape --variant prefork --database-url {url}", module=SIZING)
    assert result.stdout == expected + "\n", result.stderr
    result = generate(f"shape --variant prefork --processes 40 --database-url {url}", module=SIZING)
    assert result.returncode == 2 and result.stdout == ""
    assert "refused" in result.stderr and f"--processes {USABLE}" in result.stderr
