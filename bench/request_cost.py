"""CPU per request, in process: ``python -m bench.request_cost`` (``--help``).

What a request costs the web process, measured without a web server or a load generator
(whose noise, on a shared host, buries a few microseconds). One worker process per
configuration (bench/cost_worker.py) loads the site's settings, all of its middleware
included, with a page of 3 small SELECTs (bench/costpage.py) and drives Django's
``WSGIHandler`` directly, against the bench's own PostgreSQL (bench/database.py). Every
round starts fresh workers, which take turns serving short slices of requests, and reads
the CPU each spent (``time.process_time()``: every thread, the backend's housekeeping and
the dashboard's publisher included; PostgreSQL's own CPU excluded). Figures are medians
over the rounds; the differences (the backend against ``CONN_MAX_AGE=None``, the
middleware on against off) are paired within each round.

Two shapes: prefork (one thread; ``mode: "process"``) and threaded (``--threads`` threads
sharing the worker; ``mode: "pool"``). ``--against DIR`` also runs every configuration
from another checkout (before/after a change); ``--profile NAME`` runs one configuration
under cProfile instead and prints where its time goes.

Writes ``bench/published/request_cost.json`` (or ``--out``), which docs/performance.md
quotes (``python -m bench.published`` renders the table).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.site import REPO_DIR, STOCK_ENGINE, clean_environ

PUBLISHED = Path(__file__).resolve().parent / "published" / "request_cost.json"
SLICES = 20  # turns per round


@dataclass(frozen=True)
class Config:
    name: str
    shape: str  # "prefork" | "threaded"
    engine: str
    mode: str | None  # persistent_backend's mode
    metrics: bool  # the dashboard's metrics middleware

    def env(self):
        env = {
            "DJANGO_DB_ENGINE": self.engine,
            "DJANGO_CONN_MAX_AGE": "none" if self.engine == STOCK_ENGINE else "0",
            "DASHBOARD_METRICS": "1" if self.metrics else "0",
        }
        if self.mode:
            env["PERSISTENT_MODE"] = self.mode
        return env


CONFIGS = (
    Config("stock-prefork", "prefork", STOCK_ENGINE, None, False),
    Config("persistent-prefork", "prefork", "persistent_backend", "process", False),
    Config("persistent-prefork-metrics", "prefork", "persistent_backend", "process", True),
    Config("stock-threaded", "threaded", STOCK_ENGINE, None, False),
    Config("persistent-threaded", "threaded", "persistent_backend", "pool", False),
    Config("persistent-threaded-metrics", "threaded", "persistent_backend", "pool", True),
)
BY_NAME = {config.name: config for config in CONFIGS}
# (what, config, baseline): the paired differences the docs quote.
COMPARISONS = (
    ("persistent_backend vs CONN_MAX_AGE=None", "persistent-prefork", "stock-prefork"),
    ("metrics middleware on vs off", "persistent-prefork-metrics", "persistent-prefork"),
    ("persistent_backend vs CONN_MAX_AGE=None", "persistent-threaded", "stock-threaded"),
    ("metrics middleware on vs off", "persistent-threaded-metrics", "persistent-threaded"),
)


# -- the parent ------------------------------------------------------------------------
@contextmanager
def workers_database(prefix):
    """The bench's own PostgreSQL while the block runs; yields the workers' site
    environment (its database, and ``DJANGO_PSYCOPG`` as given, else psycopg2)."""
    from bench.database import BenchDatabase

    database = BenchDatabase()
    work_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        database.start(work_dir)
        yield {
            **database.site_env(work_dir),
            "DJANGO_PSYCOPG": os.environ.get("DJANGO_PSYCOPG", "2"),
        }
    finally:
        database.destroy()
        shutil.rmtree(work_dir, ignore_errors=True)


class Worker:
    def __init__(self, config, site_env, threads, tree=REPO_DIR, name=None):
        self.config = config
        self.name = name or config.name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.cost_worker", str(threads)],
            cwd=tree,
            env={**clean_environ(), **site_env, **config.env()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.reply()

    def reply(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited ({self.process.wait()})")
        return json.loads(line)

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def start_workers(configs, site_env, threads, against=None):
    """One worker per configuration; with ``against`` (another checkout of this
    repository), one more per configuration running that checkout's code."""
    trees = [(REPO_DIR, "")] + ([(against, f" @ {against.name}")] if against else [])
    workers = []
    try:
        for config in configs:
            shape_threads = threads if config.shape == "threaded" else 1
            for tree, suffix in trees:
                workers.append(Worker(config, site_env, shape_threads, tree, config.name + suffix))
        for w in workers:
            w.reply()  # ready
    except BaseException:
        for w in workers:
            w.process.kill()
        raise
    return workers


def stop_workers(workers):
    for w in workers:
        w.stop()


def measure(start, rounds, requests, slices=SLICES):
    """{config name: [per-round figures]}. Every round starts fresh workers (``start()``:
    a process's own memory layout and hash seed move its figures by a few percent, so
    they must vary between rounds, not stay with one configuration), then hands each
    ``requests`` requests in ``slices`` slices, the workers taking turns slice by slice
    (the order rotating), so that the host's other load weighs on all of them alike.

    Per round: ``cpu_us``, all the CPU of the round per request (background threads
    included), and ``quiet_us``, that of its least disturbed slice (other processes on
    the host only ever add to a slice's CPU time: cache misses, frequency)."""
    results = {}
    per_slice = max(1, requests // slices)
    for r in range(rounds):
        workers = start()
        try:
            runs = {w.name: [] for w in workers}
            for s in range(slices):
                turn = (r + s) % len(workers)
                for w in workers[turn:] + workers[:turn]:
                    runs[w.name].append(w.ask(f"run {per_slice}"))
        finally:
            stop_workers(workers)
        for name, figures in runs.items():
            served = sum(f["requests"] for f in figures)
            results.setdefault(name, []).append(
                {
                    "cpu_us": sum(f["cpu"] for f in figures) / served * 1e6,
                    "quiet_us": min(f["cpu"] / f["requests"] for f in figures) * 1e6,
                    "wall_us": sum(f["wall"] for f in figures) / served * 1e6,
                }
            )
    return results


MEASURES = ("cpu_us", "quiet_us")


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(results, against=None):
    """Medians and spreads per configuration, and the paired differences."""
    configs = {
        name: {key: spread([r[key] for r in rounds]) for key in MEASURES}
        for name, rounds in results.items()
    }
    pairs = list(COMPARISONS)
    if against is not None:
        suffix = f" @ {against.name}"
        pairs += [(f"{n}: this tree vs {against.name}", n, n + suffix) for n in BY_NAME]
    comparisons = []
    for what, name, base in pairs:
        if name not in results or base not in results:
            continue
        rounds = list(zip(results[name], results[base], strict=True))
        comparisons.append(
            {
                "what": what,
                "shape": BY_NAME[name].shape,
                "config": name,
                "baseline": base,
                **{
                    key: spread([ours[key] - theirs[key] for ours, theirs in rounds])
                    for key in MEASURES
                },
                "percent": {
                    key: statistics.median(
                        100 * (ours[key] / theirs[key] - 1) for ours, theirs in rounds
                    )
                    for key in MEASURES
                },
            }
        )
    return configs, comparisons


def _cell(figures, spec=".0f"):
    low, high = (f"{figures[key]:{spec}}" for key in ("min", "max"))
    return f"{figures['median']:{spec}} us ({low} to {high})"


def render(data):
    """The docs' tables (markdown) from request_cost.json's dict."""
    meta = data["meta"]
    lines = [
        f"Measured on {meta['date']} ({meta['machine']}; psycopg{meta['psycopg']}, "
        f"{meta['rounds']} rounds of {meta['requests']} requests per configuration in "
        f"interleaved slices, threaded shape with {meta['threads']} threads) by "
        f"`{meta['command']}`: CPU of the web process per request, median of the rounds "
        '(lowest to highest); "all": the whole round, "quietest": its least disturbed '
        "slice.",
        "",
        "| configuration | all | quietest |",
        "|---|---|---|",
    ]
    for name, figures in data["configs"].items():
        lines.append(f"| {name} | {_cell(figures['cpu_us'])} | {_cell(figures['quiet_us'])} |")
    lines += ["", "| paired within rounds | shape | all | quietest |", "|---|---|---|---|"]
    for c in data["comparisons"]:
        cells = [f"{_cell(c[key], '+.1f')}, {c['percent'][key]:+.1f}%" for key in MEASURES]
        lines.append(f"| {c['what']} | {c['shape']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(
        prog="python -m bench.request_cost", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--requests", type=int, default=2000, help="requests per round (default 2000)")
    p.add_argument("--threads", type=int, default=4, help="threads of the threaded shape (4)")
    p.add_argument("--only", nargs="+", choices=list(BY_NAME), help="these configurations only")
    p.add_argument("--profile", choices=list(BY_NAME), help="cProfile one configuration instead")
    p.add_argument("--out", type=Path, default=PUBLISHED, help=f"default {PUBLISHED}")
    p.add_argument(
        "--against",
        type=Path,
        help="also run every configuration from this other checkout (before/after, paired)",
    )
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if min(args.rounds, args.requests, args.threads) < 1:
        print(
            "bench.request_cost: --rounds, --requests and --threads must be >= 1", file=sys.stderr
        )
        return 2
    if args.against is not None and not (args.against / "bench" / "cost_worker.py").is_file():
        print(
            f"bench.request_cost: --against {args.against}: no bench/cost_worker.py there "
            "(copy this one in)",
            file=sys.stderr,
        )
        return 2
    from bench.machine import describe
    from bench.results import run_meta, write_published

    names = [args.profile] if args.profile else args.only or list(BY_NAME)
    configs = [BY_NAME[name] for name in names]
    with workers_database("bench-cost-") as site_env:

        def start():
            return start_workers(configs, site_env, args.threads, args.against)

        if args.profile:
            workers = start()
            try:
                reply = workers[0].ask(f"profile {args.requests}")
            finally:
                stop_workers(workers)
            print(reply.pop("profile"))
            print(json.dumps(reply))
            return 0
        results = measure(start, args.rounds, args.requests)
    configs_summary, comparisons = summarise(results, args.against)
    command = " ".join(["python -m bench.request_cost", *(argv or sys.argv[1:])])
    data = {
        "meta": {
            **run_meta(describe(), command),
            "psycopg": site_env["DJANGO_PSYCOPG"],
            "rounds": args.rounds,
            "requests": args.requests,
            "threads": args.threads,
        },
        "configs": configs_summary,
        "comparisons": comparisons,
        "rounds": results,
    }
    return write_published(args.out, data, render(data))


if __name__ == "__main__":
    sys.exit(main())
