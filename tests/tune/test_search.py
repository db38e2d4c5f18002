"""apache_conf.tune as pure functions: the search space, the search, the objective.

Figures are recorded ones (a landscape shaped like this 2-core machine's: prefork shapes
around 2x the threaded ones, mod_wsgi-express's 1x5 lower still), never timed here.
"""

import dataclasses
import json

import pytest

from apache_conf import tune, tuned
from apache_conf.sizing import GIB, MIB, Budget, Machine

TWO_CORES = Machine(cores=2, memory_bytes=8 * GIB)
BUDGET = Budget(max_connections=100)  # usable 100 - 3 - 2 = 95

# Recorded medians on this machine's kind (req/s, p50 ms, p99 ms) for /items/<id>/ at 16
# connections; shapes not listed fall off with distance from 3x1.
RECORDED = {
    (1, 1): (430, 37.0, 60.0),
    (1, 2): (455, 35.0, 70.0),
    (1, 4): (440, 36.0, 80.0),
    (1, 5): (420, 38.0, 85.0),
    (1, 8): (400, 40.0, 95.0),
    (2, 1): (800, 20.0, 45.0),
    (2, 2): (760, 21.0, 55.0),
    (2, 4): (700, 23.0, 70.0),
    (2, 8): (640, 25.0, 90.0),
    (3, 1): (830, 19.0, 48.0),
    (4, 1): (790, 20.0, 400.0),  # a long tail
    (4, 2): (720, 22.0, 60.0),
    (4, 4): (650, 24.0, 75.0),
    (4, 8): (560, 28.0, 140.0),
}


def figures(key):
    if key in RECORDED:
        return RECORDED[key]
    p, t = key
    rps = 830 - 60 * abs(p - 3) - 25 * abs(t - 1)
    return rps, 16000 / rps, 2.5 * 16000 / rps


def run(key, round_no=1, spread=0.0, errors=0, socket_errors=0, rss=60 * MIB, error=None):
    rps, p50, p99 = figures(key)
    record = {
        "processes": key[0],
        "threads": key[1],
        "round": round_no,
        "error": error,
    }
    if error:
        return record
    return {
        **record,
        "rps": rps * (1 + spread),
        "ok": int(rps * 5),
        "non2xx": 0,
        "server_errors": errors,
        "socket_errors": socket_errors,
        "latency_ms": {"p50": p50, "p99": p99},
        "rss_per_process_bytes": rss,
        "backends_max": tune.shape_of(*key).connections(),
        "cpu_percent": {"daemons": 150.0, "postgres": 30.0, "other": 5.0},
    }


def space(**kwargs):
    return tune.Space(kwargs.pop("machine", TWO_CORES), kwargs.pop("budget", BUDGET), **kwargs)


# --- the space ------------------------------------------------------------------------------
def test_coarse_grid_doubles_within_the_sizing_rules_and_starts_with_the_baseline():
    keys = space().coarse()
    assert keys[0] == tune.BASELINE == (1, 5)
    assert sorted(keys[1:]) == [(p, t) for p in (1, 2, 4) for t in (1, 2, 4, 8)]
    quick = space().coarse(quick=True)
    assert quick == [(1, 5), (1, 1), (1, 4), (2, 1), (2, 4)]


def test_memory_and_the_connection_budget_bound_the_space():
    # 0.5 GiB: half of it at 128 MiB a process is 2 processes.
    small = space(machine=Machine(cores=8, memory_bytes=GIB // 2))
    assert small.process_limit == 2
    assert max(p for p, _ in small.coarse()) == 2
    # 12 usable connections (17 - 3 - 2) for 2 hosts: 6 per host.
    tight = space(budget=Budget(max_connections=17), hosts=2)
    allowed = tight.coarse()[1:]
    assert all(tight.connections(key) <= 12 for key in allowed)
    assert sorted(allowed) == [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (4, 1)]
    assert not tight.allows((1, 8)) and not tight.allows((4, 2))


def test_no_shape_fits_is_a_clear_error():
    with pytest.raises(tune.TuneError, match="no shape fits"):
        space(budget=Budget(max_connections=5)).coarse()  # 0 usable


def test_neighbours_are_untried_steps_on_each_axis():
    s = space()
    tried = set(s.coarse())
    assert s.neighbours((2, 1), tried) == [(3, 1)]
    assert s.neighbours((1, 8), tried) == [(1, 6), (1, 7), (1, 9)]
    assert s.neighbours((4, 4), tried) == [(3, 4), (4, 3), (4, 6), (4, 5)]


# --- the search ----------------------------------------------------------------------------
def recorded_measure(spread=0.0):
    runs, calls = [], []
    sp = space()

    def measure(phase, keys):
        calls.append((phase, list(keys)))
        for key in keys:
            runs.append(run(key, spread=spread))
        return tune.summarise(runs, sp)

    return sp, measure, runs, calls


def test_search_refines_around_the_best_and_finds_the_peak():
    sp, measure, runs, calls = recorded_measure()
    phases = tune.search(sp, measure)
    summaries = tune.summarise(runs, sp)
    assert tune.best_key(summaries) == (3, 1)  # found by refining around 2x1
    assert [p["name"] for p in phases] == ["coarse", "refine 1", "refine 2"]
    assert calls[1] == ("refine 1", [(2, 1), (3, 1)])  # the incumbent is measured again
    assert calls[2][1][0] == (3, 1)
    # Far fewer shapes than the whole space allows.
    allowed = [(p, t) for p in range(1, 5) for t in range(1, 16) if sp.allows((p, t))]
    assert len(summaries) < len(allowed) / 3


def test_search_refines_around_what_the_objective_picks():
    sp, measure, runs, calls = recorded_measure()
    strict = tune.Objective(p99_ms=47.0)  # 3x1 (p99 48 ms) is out: refine around 2x1

    def pick(summaries):
        return tune.choose(summaries, sp, strict).chosen

    tune.search(sp, measure, pick=pick)
    assert calls[1] == ("refine 1", [(2, 1), (3, 1)])
    assert len(calls) == 2  # 2x1 stays the choice: no second refinement
    assert tune.choose(tune.summarise(runs, sp), sp, strict).chosen == (2, 1)


def test_search_stops_when_the_best_stays_put():
    sp = space(max_processes=2, max_threads=2)
    runs, calls = [], []

    def measure(phase, keys):
        calls.append(phase)
        runs.extend(run(key) for key in keys)
        return tune.summarise(runs, sp)

    tune.search(sp, measure)
    assert calls == ["coarse"]  # 2x1 wins and has no untried neighbour within 2x2


# --- the objective -------------------------------------------------------------------------
def summaries_of(keys, **kwargs):
    sp = space()
    rounds = [run(key, round_no=r, spread=s) for key in keys for r, s in ((1, -0.02), (2, 0.02))]
    return sp, tune.summarise(rounds, sp)


def test_the_highest_throughput_within_the_p99_bound_wins():
    sp, summaries = summaries_of([(1, 5), (1, 1), (2, 1), (2, 2), (3, 1), (4, 1)])
    choice = tune.choose(summaries, sp)
    assert choice.chosen == (3, 1) == choice.best
    # Default bound: 3 x the fastest shape's p99 (48 ms at 3x1).
    assert choice.p99_bound_ms == pytest.approx(144.0)
    assert "3x1: 48.0 ms" in choice.p99_bound_source
    assert choice.verdicts["4x1"].startswith("p99 400.0 ms > bound 144.0")
    assert choice.verdicts["1x5"] == choice.verdicts["2x1"] == "ok"


def test_an_explicit_p99_bound_can_exclude_the_fastest():
    sp, summaries = summaries_of([(1, 5), (2, 1), (3, 1)])
    choice = tune.choose(summaries, sp, tune.Objective(p99_ms=46.0))
    assert choice.verdicts["3x1"].startswith("p99 48.0 ms")
    assert choice.chosen == (2, 1) and choice.best == (3, 1)


def test_ties_go_to_fewer_connections_then_less_memory():
    sp, summaries = summaries_of([(2, 1), (2, 2), (3, 1)])
    # 2x2 within 10% of 3x1 but holds 4 connections; 2x1 (2) wins the tie.
    choice = tune.choose(summaries, sp, tune.Objective(tie=0.10))
    assert choice.chosen == (2, 1)
    assert "fewer connections" in choice.reason
    # With a 0% tie band the fastest wins outright.
    assert tune.choose(summaries, sp, tune.Objective(tie=0.0)).chosen == (3, 1)


def test_errors_memory_and_failed_runs_exclude_a_shape():
    sp = space()
    runs = [
        run((3, 1), errors=4),
        run((2, 1), rss=3 * GIB),  # 2 x 3 GiB > half of 8 GiB
        run((4, 1)),
        run((4, 1), round_no=2, error="server did not start"),
        run((1, 2)),
        run((1, 1), socket_errors=20),  # under 1% of 2150: reported, tolerated
        run((1, 4), socket_errors=30),  # over 1% of 2200
    ]
    summaries = tune.summarise(runs, sp)
    choice = tune.choose(summaries, sp, tune.Objective(p99_ms=100))
    assert choice.verdicts["3x1"] == "4 5xx answers"
    assert choice.verdicts["1x4"] == "30 socket errors in 2200 requests"
    assert choice.verdicts["1x1"] == "ok"
    assert choice.verdicts["2x1"].startswith("memory 6144 MiB > 4096 MiB")
    assert choice.verdicts["4x1"] == "1 of 2 runs failed"
    assert summaries[(4, 1)]["failed"] == 1 and summaries[(4, 1)]["rps"]["n"] == 1
    assert choice.chosen == (1, 2)  # 455 req/s, ahead of 1x1's 430


def test_nothing_feasible_chooses_nothing():
    sp, summaries = summaries_of([(1, 5), (2, 1)])
    choice = tune.choose(summaries, sp, tune.Objective(p99_ms=1.0))
    assert choice.chosen is None and "no shape met" in choice.reason


def test_spreads_and_noise_come_from_the_repeats():
    sp, summaries = summaries_of([(2, 1), (3, 1)])
    rps = summaries[(2, 1)]["rps"]
    assert (rps["n"], rps["min"], rps["max"]) == (2, 784.0, 816.0)
    assert rps["median"] == pytest.approx(800.0)
    assert tune.noise(summaries) == pytest.approx(0.04)
    assert tune.noise(tune.summarise([run((2, 1))], sp)) is None


# --- outputs -------------------------------------------------------------------------------
def result_for(chosen):
    return {
        "meta": {
            "machine": {"cores_used": 2, "memory_bytes": 8 * GIB},
            "budget": dataclasses.asdict(Budget(max_connections=100, source="recorded")),
            "hosts": 1,
            "command": "./deploy.sh tune",
            "date": "2026-11-29 21:30 UTC",
        },
        "choice": {"chosen": chosen, "reason": "recorded"},
    }


def test_tuned_outputs_render_the_chosen_shape(tmp_path):
    from apache_conf import render

    site = render.Site(server_name="example.com", site_root="/srv/site", venv="/srv/site/.venv")
    files = tuned.tuned_outputs(
        result_for({"processes": 3, "threads": 1}), site, "python -m apache_conf.tune"
    )
    conf = files["tuned.conf"]
    assert conf.startswith("# tuned.conf: Apache + mod_wsgi daemon mode")
    assert "processes=3 threads=1" in conf
    assert "measured by `./deploy.sh tune`" in conf
    assert files["tuned.env"].splitlines()[1:] == [
        "PERSISTENT_MODE=process",
        "PERSISTENT_MAX_SIZE=1",
    ]


def test_a_tampered_result_cannot_inject_config_lines():
    from apache_conf import render

    site = render.Site(server_name="example.com", site_root="/srv/site", venv="/srv/site/.venv")
    result = result_for({"processes": 2, "threads": 1})
    result["choice"]["reason"] = "fine\nLoadModule evil_module /tmp/evil.so"
    conf = tuned.tuned_outputs(result, site, "cmd")["tuned.conf"]
    assert not any(line.startswith("LoadModule") for line in conf.splitlines())
    result["meta"]["budget"]["max_connections"] = "100; rm -rf /"
    with pytest.raises(tune.TuneError, match="max_connections"):
        tuned.tuned_outputs(result, site, "cmd")


@pytest.mark.parametrize(
    "chosen, message",
    [
        (None, "no chosen shape"),
        ({"processes": "x", "threads": 1}, "malformed"),
        ({"processes": 0, "threads": 1}, "at least 1"),
        ({"processes": 5000, "threads": 1}, "implausible"),
    ],
)
def test_shell_refuses_a_bad_result_with_one_line(tmp_path, capsys, chosen, message):
    (tmp_path / "result.json").write_text(json.dumps(result_for(chosen)))
    assert tuned.main(["--shell", "--from", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_shell_prints_the_last_tuned_shape(tmp_path, capsys):
    for stamp, chosen in (("20261129-200000", (1, 8)), ("20261129-210000", (2, 4))):
        (tmp_path / stamp).mkdir()
        p, t = chosen
        data = result_for({"processes": p, "threads": t})
        (tmp_path / stamp / "result.json").write_text(json.dumps(data))
    assert tuned.main(["--shell", "--from", str(tuned.latest_run(tmp_path))]) == 0
    assert capsys.readouterr().out == "PROCESSES=2 THREADS=4 PERSISTENT_MODE=pool\n"
    assert tuned.main(["--from", str(tmp_path / "missing")]) == 2
    assert "run ./deploy.sh tune first" in capsys.readouterr().err
