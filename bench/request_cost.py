"""CPU per request, in process: ``python -m bench.request_cost`` (``--help``).

What a request costs the web process, measured without a web server or a load generator
(whose noise, on a shared host, buries a few microseconds): one worker process per
configuration loads the site's settings (all of its middleware) with a page of 3 small
SELECTs (bench/costpage.py) and drives Django's ``WSGIHandler`` directly, against the
bench's own PostgreSQL (bench/database.py). A round asks every worker, in turn (the order
rotates), for ``--requests`` requests and reads the CPU the worker process spent on them
(``time.process_time()``: every thread, the backend's housekeeping and the dashboard's
publisher included; PostgreSQL's own CPU excluded). Figures are medians over the rounds;
the differences (the backend against ``CONN_MAX_AGE=None``, the middleware on against off)
are paired within each round, so a noisy round moves both sides.

Two shapes: prefork (one thread; ``mode: "process"``) and threaded (``--threads`` threads
sharing the worker; ``mode: "pool"``). ``--profile NAME`` runs one configuration under
cProfile instead and prints where its time goes.

Writes ``bench/published/request_cost.json`` (or ``--out``), which docs/performance.md
quotes (``python -m bench.published`` renders the table).
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.site import REPO_DIR, SITE_DIR, STOCK_ENGINE, clean_environ

PUBLISHED = Path(__file__).resolve().parent / "published" / "request_cost.json"
PAGE = "/cost/{id}/"
ITEMS = 100  # the page cycles over this many items
WARMUP = 300
SLICES = 10  # turns per round


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


# -- inside a worker -------------------------------------------------------------------
def _environ(path):
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


class Driver:
    """The site's WSGI handler with this bench's page, driven by ``threads`` threads."""

    def __init__(self, threads):
        sys.path.insert(0, str(SITE_DIR))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django
        from django.conf import settings

        django.setup()
        settings.ROOT_URLCONF = "bench.costpage"
        from django.core.handlers.wsgi import WSGIHandler

        from catalog.models import Item

        self.handler = WSGIHandler()
        self.paths = [
            PAGE.format(id=pk) for pk in Item.objects.values_list("pk", flat=True)[:ITEMS]
        ]
        from django.db import connections

        connections.close_all()  # the lookup's connection belongs to no request
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads)

    def request(self, path):
        status = []
        body = self.handler(_environ(path), lambda s, headers, exc_info=None: status.append(s))
        try:
            for _ in body:
                pass
        finally:
            body.close()
        if not status[0].startswith("200"):
            raise RuntimeError(f"GET {path}: {status[0]}")

    def _serve(self, count, offset):
        paths = self.paths
        for i in range(count):
            self.request(paths[(offset + i) % len(paths)])

    def run(self, requests):
        """Serve ``requests`` requests (split among the threads): CPU and wall seconds."""
        share = max(1, requests // self.threads)
        cpu, wall = time.process_time(), time.perf_counter()
        futures = [self.executor.submit(self._serve, share, t * 7) for t in range(self.threads)]
        for future in futures:
            future.result()
        return {
            "requests": share * self.threads,
            "cpu": time.process_time() - cpu,
            "wall": time.perf_counter() - wall,
        }


def worker(threads):
    """Answer ``run N`` lines on stdin with one JSON line each; ``profile N`` prints stats."""
    driver = Driver(threads)
    driver.run(WARMUP)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        command, _, count = line.partition(" ")
        if command == "run":
            print(json.dumps(driver.run(int(count))), flush=True)
        elif command == "profile":
            import cProfile
            import pstats

            driver._serve(WARMUP, 0)  # this thread's own connection, warmed up
            profiler = cProfile.Profile()
            cpu = time.process_time()
            profiler.enable()
            driver._serve(int(count), 0)  # in this thread: cProfile sees only its own
            profiler.disable()
            figures = {"requests": int(count), "cpu": time.process_time() - cpu}
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
            stats.print_stats(25)
            stats.sort_stats("cumulative").print_stats("persistent_backend|dashboard|dispatch", 60)
            print(json.dumps({**figures, "profile": out.getvalue()}), flush=True)
        else:
            return


# -- the parent ------------------------------------------------------------------------
class Worker:
    def __init__(self, config, site_env, threads, tree=REPO_DIR, name=None):
        self.config = config
        self.name = name or config.name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.request_cost", "--worker", str(threads)],
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
    (the order rotating), so that the host's other load weighs on all of them alike."""
    results = {}
    per_slice = max(1, requests // slices)
    for r in range(rounds):
        workers = start()
        try:
            totals = {w.name: {"requests": 0, "cpu": 0.0, "wall": 0.0} for w in workers}
            for s in range(slices):
                turn = (r + s) % len(workers)
                for w in workers[turn:] + workers[:turn]:
                    figures = w.ask(f"run {per_slice}")
                    for key, total in totals[w.name].items():
                        totals[w.name][key] = total + figures[key]
        finally:
            stop_workers(workers)
        for name, total in totals.items():
            results.setdefault(name, []).append(
                {
                    "cpu_us": total["cpu"] / total["requests"] * 1e6,
                    "wall_us": total["wall"] / total["requests"] * 1e6,
                }
            )
    return results


def summarise(results, against=None):
    """Medians and spreads per configuration, and the paired differences."""
    configs = {}
    for name, rounds in results.items():
        cpu = [r["cpu_us"] for r in rounds]
        configs[name] = {
            "cpu_us": statistics.median(cpu),
            "cpu_us_min": min(cpu),
            "cpu_us_max": max(cpu),
            "wall_us": statistics.median(r["wall_us"] for r in rounds),
        }
    comparisons = []
    pairs = list(COMPARISONS)
    if against is not None:
        suffix = f" @ {against.name}"
        pairs += [
            ("this tree vs " + against.name, n, n + suffix)
            for n in BY_NAME
            if n + suffix in results
        ]
    for what, name, base in pairs:
        if name not in results or base not in results:
            continue
        deltas = [
            ours["cpu_us"] - theirs["cpu_us"]
            for ours, theirs in zip(results[name], results[base], strict=True)
        ]
        percents = [
            100 * (ours["cpu_us"] / theirs["cpu_us"] - 1)
            for ours, theirs in zip(results[name], results[base], strict=True)
        ]
        comparisons.append(
            {
                "what": what,
                "shape": BY_NAME[name].shape,
                "config": name,
                "baseline": base,
                "extra_us": statistics.median(deltas),
                "extra_us_min": min(deltas),
                "extra_us_max": max(deltas),
                "extra_percent": statistics.median(percents),
            }
        )
    return configs, comparisons


def render(data):
    """The docs' table (markdown) from request_cost.json's dict."""
    meta = data["meta"]
    lines = [
        f"Measured on {meta['date']} ({meta['machine']}; psycopg{meta['psycopg']}, "
        f"{meta['rounds']} interleaved rounds of {meta['requests']} requests, threaded shape "
        f"with {meta['threads']} threads) by `{meta['command']}`: CPU of the web process per "
        "request (median of the rounds, lowest-highest).",
        "",
        "| configuration | CPU per request |",
        "|---|---|",
    ]
    for name, figures in data["configs"].items():
        lines.append(
            f"| {name} | {figures['cpu_us']:.0f} us "
            f"({figures['cpu_us_min']:.0f}-{figures['cpu_us_max']:.0f}) |"
        )
    lines += ["", "| paired within rounds | shape | extra CPU per request |", "|---|---|---|"]
    for c in data["comparisons"]:
        lines.append(
            f"| {c['what']} | {c['shape']} | {c['extra_us']:+.1f} us "
            f"({c['extra_us_min']:+.1f} to {c['extra_us_max']:+.1f}), "
            f"{c['extra_percent']:+.2f}% |"
        )
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
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    if min(args.rounds, args.requests, args.threads) < 1:
        print(
            "bench.request_cost: --rounds, --requests and --threads must be >= 1", file=sys.stderr
        )
        return 2
    if args.against is not None and not (args.against / "bench" / "request_cost.py").is_file():
        print(
            f"bench.request_cost: --against {args.against}: no bench/request_cost.py there "
            "(copy this one in)",
            file=sys.stderr,
        )
        return 2
    from bench.database import BenchDatabase
    from bench.machine import describe
    from bench.results import run_meta, write_published

    names = [args.profile] if args.profile else args.only or list(BY_NAME)
    configs = [BY_NAME[name] for name in names]
    database = BenchDatabase()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    try:
        database.start(work_dir)
        site_env = {
            **database.site_env(work_dir),
            "DJANGO_PSYCOPG": os.environ.get("DJANGO_PSYCOPG", "2"),
        }

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
    finally:
        database.destroy()
        shutil.rmtree(work_dir, ignore_errors=True)
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
