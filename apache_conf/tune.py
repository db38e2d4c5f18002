"""Measured tuning, the pure half: which daemon shapes to try, in which order, and which wins.

``bench.tune`` (``./deploy.sh tune``) measures; this module only decides, from figures:

* ``Space``: the shapes worth trying on this machine, bounded by apache_conf's sizing rules
  (processes that fit in ``MEMORY_SHARE`` of the memory at ``PROCESS_MIB`` each, threads up
  to ``MAX_DEFAULT_THREADS``, and connections within PostgreSQL's usable budget for
  ``hosts`` web hosts), plus mod_wsgi-express's own default shape as the baseline.
* ``search``: a coarse grid (doubling processes and threads), then refinement around the
  best shape so far (its neighbours on each axis), until the best stops moving.
* ``choose``: the objective. Among the shapes that served no 5xx (and few socket
  errors), whose p99 latency stays under a bound (``p99_ms``; default ``P99_FACTOR`` x the
  fastest shape's p99) and whose memory (processes x measured RSS) and connections fit,
  the highest median throughput wins; shapes within ``tie`` of it are ties, and ties go
  to fewer PostgreSQL connections, then less memory.

apache_conf.tuned turns a run's result.json into tuned.conf and tuned.env, and prints the
last tuned shape for deploy.sh (``python -m apache_conf.tune --shell``).
"""

from dataclasses import dataclass, field

from apache_conf import render
from apache_conf.figures import load_figures, spread
from apache_conf.sizing import (
    MAX_DEFAULT_THREADS,
    MEMORY_SHARE,
    MIB,
    Budget,
    Machine,
    Shape,
)

#: mod_wsgi-express's own daemon shape when given no --processes/--threads.
BASELINE = (1, 5)
#: Default p99 bound: this many times the median p99 of the fastest shape (docs/tuning.md
#: says why not its p50: in a closed loop p50 is connections / throughput, and on a shared
#: host every shape's tail is several times its median).
P99_FACTOR = 3.0
#: Default tie band: shapes within 3% of the best median throughput are ties.
TIE = 0.03
#: Socket errors tolerated, as a share of the requests answered: mod_wsgi-express's front
#: end reaps idle event-MPM children under load (MaxSpareThreads 10), closing a few
#: keep-alive connections mid-request; 5xx answers are never tolerated.
MAX_SOCKET_ERRORS = 0.01
#: Refinement rounds after the coarse grid (each stops early once the best stays put).
REFINE_ROUNDS = 2
TUNE_DIR = render.REPO_DIR / "var" / "tune"


class TuneError(Exception):
    """A result file or an input the tuner cannot use; ``str()`` is one line."""


def shape_of(processes, threads):
    """The sizing Shape for processes x threads (its variant follows from the numbers)."""
    if threads == 1:
        variant = "prefork"
    elif processes == 1:
        variant = "threaded"
    else:
        variant = "hybrid"
    return Shape(variant, processes, threads)


def label(key):
    """``PxT``, the shape's name in results and reports."""
    return f"{key[0]}x{key[1]}"


def _doubling(limit):
    values, n = [], 1
    while n <= limit:
        values.append(n)
        n *= 2
    return values


# --- the search space ---------------------------------------------------------------------
@dataclass(frozen=True)
class Space:
    """Shapes processes x threads allowed on ``machine`` within ``budget``."""

    machine: Machine
    budget: Budget
    hosts: int = 1
    max_processes: int | None = None
    max_threads: int | None = None

    def __post_init__(self):
        if self.hosts < 1:
            raise TuneError("--hosts must be at least 1")
        for name in ("max_processes", "max_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TuneError(f"--{name.replace('_', '-')} must be at least 1")

    @property
    def process_limit(self):
        """Up to 2 x cores (at least 4) daemons, and never more than fit in memory."""
        default = max(4, 2 * self.machine.cores)
        limit = min(self.max_processes or default, self.machine.max_processes)
        return max(1, limit)

    @property
    def thread_limit(self):
        """Most threads a shape may have (--max-threads, else MAX_DEFAULT_THREADS)."""
        return self.max_threads or MAX_DEFAULT_THREADS

    def connections(self, key):
        """PostgreSQL connections shape ``key`` holds on every host."""
        return shape_of(*key).connections(self.hosts)

    def allows(self, key):
        """True when shape ``key`` is in bounds and fits the connection budget."""
        processes, threads = key
        return (
            1 <= processes <= self.process_limit
            and 1 <= threads <= self.thread_limit
            and self.connections(key) <= self.budget.usable
        )

    def coarse(self, quick=False):
        """The grid (doubling on both axes; ``quick``: 1 and the largest of each) and the
        baseline, which is always measured, even outside the limits."""
        processes = _doubling(self.process_limit)
        threads = _doubling(min(self.thread_limit, 8))
        if quick:
            processes = sorted({1, min(self.process_limit, max(2, self.machine.cores))})
            threads = sorted({1, min(self.thread_limit, 4)})
        keys = [(p, t) for p in processes for t in threads if self.allows((p, t))]
        if not keys:
            raise TuneError(
                f"no shape fits: {self.budget.usable} usable PostgreSQL connections for "
                f"{self.hosts} host(s); raise max_connections or lower --hosts"
            )
        return [BASELINE, *[key for key in keys if key != BASELINE]]

    def neighbours(self, key, tried):
        """Untried shapes next to ``key``: processes +-1, threads halfway to the next
        tried value on either side (or +-1)."""
        processes, threads = key
        known = sorted({t for p, t in tried if p == processes} | {threads})
        out = [(processes - 1, threads), (processes + 1, threads)]
        for other in (_next_below(known, threads), _next_above(known, threads)):
            if other is not None and abs(other - threads) > 1:
                out.append((processes, (threads + other) // 2))
        out += [(processes, threads - 1), (processes, threads + 1)]
        seen, result = set(tried), []
        for candidate in out:
            if candidate and candidate not in seen and self.allows(candidate):
                seen.add(candidate)
                result.append(candidate)
        return result


def _next_below(values, value):
    below = [v for v in values if v < value]
    return below[-1] if below else None


def _next_above(values, value):
    above = [v for v in values if v > value]
    return above[0] if above else None


# --- figures ---------------------------------------------------------------------------------
def summarise(runs, space):
    """{key: summary} over every run of each shape (runs as bench.tune records them)."""
    by_key = {}
    for run in runs:
        by_key.setdefault((run["processes"], run["threads"]), []).append(run)
    summaries = {}
    for key, mine in by_key.items():
        done = [run for run in mine if not run.get("error")]
        cpu_parts = sorted({part for run in done for part in run.get("cpu_percent", {})})
        shape = shape_of(*key)
        summaries[key] = {
            "shape": label(key),
            "processes": key[0],
            "threads": key[1],
            "mode": shape.mode,
            "max_size": shape.connections_per_process,
            "connections": space.connections(key),
            "runs": len(mine),
            "failed": len(mine) - len(done),
            **load_figures(done),
            "server_errors": sum(run["server_errors"] for run in done),
            "rss_per_process_bytes": spread(run.get("rss_per_process_bytes") for run in done),
            "backends_max": spread(run.get("backends_max") for run in done),
            "cpu_percent": {
                part: spread(run["cpu_percent"].get(part) for run in done) for part in cpu_parts
            },
        }
    return summaries


# --- the search -------------------------------------------------------------------------------
def trouble(summary):
    """Why a shape's runs cannot count (failed runs, 5xx, too many socket errors), or None."""
    s = summary
    if not s["rps"]:
        return "not measured (every run failed)"
    if s["failed"]:
        return f"{s['failed']} of {s['runs']} runs failed"
    if s["server_errors"]:
        return f"{s['server_errors']} 5xx answers"
    if s["ok"] <= 0:
        return "served no 2xx"
    answered = s["ok"] + s["non2xx"]
    if s["socket_errors"] > MAX_SOCKET_ERRORS * answered:
        return f"{s['socket_errors']} socket errors in {answered} requests"
    return None


def best_key(summaries):
    """The clean shape (``trouble`` None) with the highest median throughput, or None."""
    clean = [key for key, s in summaries.items() if trouble(s) is None]
    return max(clean, key=lambda key: summaries[key]["rps"]["median"], default=None)


def search(space, measure, quick=False, refine_limit=None, pick=best_key):
    """Run the search; ``measure(phase, keys)`` returns ``{key: summary}`` for every shape
    measured so far (it may re-measure earlier keys). Returns the phases: a list of
    ``{"name", "shapes"}``.

    ``pick(summaries)`` names the incumbent to refine around (the objective's choice, say);
    it is measured again in each refinement phase, so that it and its neighbours share the
    same minutes of a shared machine.
    """
    refine_limit = refine_limit or (2 if quick else 4)
    rounds = 1 if quick else REFINE_ROUNDS
    phases = [{"name": "coarse", "shapes": [label(k) for k in space.coarse(quick)]}]
    summaries = measure("coarse", space.coarse(quick))
    for n in range(1, rounds + 1):
        best = pick(summaries)
        if best is None:
            break
        fresh = space.neighbours(best, summaries)[:refine_limit]
        if not fresh:
            break
        keys = [best, *fresh]
        phases.append({"name": f"refine {n}", "shapes": [label(k) for k in keys]})
        summaries = measure(f"refine {n}", keys)
        if pick(summaries) == best:
            break
    return phases


# --- the objective ----------------------------------------------------------------------------
@dataclass
class Objective:
    """What ``choose`` optimises; every field is a command-line option of bench.tune."""

    p99_ms: float | None = None  # None: P99_FACTOR x the fastest shape's median p99
    tie: float = TIE
    memory_bytes: int | None = None  # None: MEMORY_SHARE of the machine
    hosts: int = 1

    def bound(self, summaries):
        """(p99 bound in ms, where it comes from): --p99-ms, else a factor of the
        fastest clean shape's p99; (None, why) when nothing was measured."""
        if self.p99_ms is not None:
            return self.p99_ms, f"--p99-ms {self.p99_ms:g}"
        best = best_key(summaries)
        if best is None or not summaries[best]["p99_ms"]:
            return None, "no latency measured"
        p99 = summaries[best]["p99_ms"]["median"]
        return (
            P99_FACTOR * p99,
            f"{P99_FACTOR:g} x the fastest shape's p99 ({label(best)}: {p99:.1f} ms)",
        )


@dataclass
class Choice:
    """The tuner's verdict: the chosen shape (None: none qualified), the best by
    throughput, and why each shape was kept or left out."""

    chosen: tuple | None
    best: tuple | None  # highest median throughput among every clean shape
    verdicts: dict = field(default_factory=dict)  # label -> "ok" or why it was left out
    p99_bound_ms: float | None = None
    p99_bound_source: str = ""
    memory_limit_bytes: int = 0
    reason: str = ""


def memory_needed(summary, processes):
    """Daemon memory of a shape: processes x the largest RSS one of its daemons reached."""
    rss = summary.get("rss_per_process_bytes")
    return None if not rss else processes * rss["max"]


def choose(summaries, space, objective=None):
    """Apply the objective to ``{key: summary}``; a ``Choice`` with a verdict per shape."""
    objective = objective or Objective(hosts=space.hosts)
    bound, source = objective.bound(summaries)
    memory_limit = objective.memory_bytes or int(space.machine.memory_bytes * MEMORY_SHARE)
    verdicts, feasible = {}, []
    for key, s in sorted(summaries.items()):
        why = _excluded(key, s, space, bound, memory_limit)
        verdicts[label(key)] = why or "ok"
        if why is None:
            feasible.append(key)
    best = best_key(summaries)
    choice = Choice(None, best, verdicts, bound, source, memory_limit)
    if not feasible:
        choice.reason = "no shape met the objective: see each shape's verdict"
        return choice
    top = max(summaries[key]["rps"]["median"] for key in feasible)
    tied = [key for key in feasible if summaries[key]["rps"]["median"] >= (1 - objective.tie) * top]

    def order(key):
        s = summaries[key]
        return (space.connections(key), memory_needed(s, key[0]) or 0, -s["rps"]["median"])

    choice.chosen = min(tied, key=order)
    chosen_rps = summaries[choice.chosen]["rps"]["median"]
    others = ", ".join(label(k) for k in sorted(tied) if k != choice.chosen)
    choice.reason = (
        f"{label(choice.chosen)}: {chosen_rps:.0f} req/s median, the highest within the p99 "
        f"bound, memory and connections"
        if not others
        else f"{label(choice.chosen)}: {chosen_rps:.0f} req/s median, within "
        f"{objective.tie:.0%} of the top ({top:.0f}) with {others}; "
        f"ties go to fewer connections ({space.connections(choice.chosen)}), then less memory"
    )
    return choice


def _excluded(key, s, space, bound, memory_limit):
    why = trouble(s)
    if why is not None:
        return why
    if bound is not None and s["p99_ms"] and s["p99_ms"]["median"] > bound:
        return f"p99 {s['p99_ms']['median']:.1f} ms > bound {bound:.1f} ms"
    needed = memory_needed(s, key[0])
    if needed is not None and needed > memory_limit:
        return f"memory {needed / MIB:.0f} MiB > {memory_limit / MIB:.0f} MiB"
    connections = space.connections(key)
    if connections > space.budget.usable:
        return f"{connections} connections > {space.budget.usable} usable"
    return None


def noise(summaries):
    """The run-to-run spread: median over shapes of (max - min) / median throughput."""
    spreads = sorted(
        (s["rps"]["max"] - s["rps"]["min"]) / s["rps"]["median"]
        for s in summaries.values()
        if s["rps"] and s["rps"]["n"] > 1 and s["rps"]["median"]
    )
    if not spreads:
        return None
    middle = len(spreads) // 2
    return spreads[middle] if len(spreads) % 2 else (spreads[middle - 1] + spreads[middle]) / 2


if __name__ == "__main__":
    # ``python -m apache_conf.tune --shell``: the command line lives with the result files.
    from apache_conf.tuned import main

    raise SystemExit(main())
