"""``python -m bench.tune`` (``./deploy.sh tune``): measure daemon shapes, choose one.

See ``--help`` and docs/tuning.md. Results go to ``var/tune/<timestamp>/``: result.json,
report.md, chart.png, tuned.conf, tuned.env, mix.txt (the URLs loaded) and logs/ of
failed runs.
"""

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

from apache_conf import inputs
from apache_conf.sizing import Machine, SizingError
from apache_conf.tune import (
    BASELINE,
    P99_FACTOR,
    TIE,
    TUNE_DIR,
    Objective,
    Space,
    TuneError,
    best_key,
    choose,
    label,
    noise,
    search,
    summarise,
)
from apache_conf.tuned import tuned_outputs
from bench.database import DB_NAME
from bench.load import wrk_binary
from bench.results import results_folder
from bench.session import Session, drive
from bench.tune import chart, mix, report
from bench.tune.measure import Measurer
from bench.tune.progress import ProgressBar

FULL = {"duration": 5, "warmup": 2, "repeat": 3}
QUICK = {"duration": 2, "warmup": 1, "repeat": 1}
START_STOP_SECONDS = 6  # mod_wsgi-express start and stop, for the first time estimate
DOCS = Path(__file__).resolve().parents[2] / "docs" / "tuning.md"


def parser():
    """The argument parser of ``python -m bench.tune``."""
    p = argparse.ArgumentParser(
        prog="python -m bench.tune",
        description="Serve the site under mod_wsgi-express in several daemon shapes "
        "(processes x threads), load each with wrk, and choose the shape with the highest "
        "throughput whose p99 latency, memory and PostgreSQL connections fit. The baseline "
        f"is mod_wsgi-express's default shape ({label(BASELINE)}). Sets up its own "
        "PostgreSQL cluster.",
    )
    p.add_argument("--quick", action="store_true", help="a small grid, one round (1-2 min)")
    p.add_argument("--duration", type=int, help=f"seconds per run (default {FULL['duration']})")
    p.add_argument("--warmup", type=int, help=f"warm-up seconds (default {FULL['warmup']})")
    p.add_argument(
        "--repeat", type=int, help=f"interleaved rounds per phase (default {FULL['repeat']})"
    )
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--url", action="append", metavar="PATH", help="a path to load (repeatable)")
    p.add_argument("--urls", metavar="FILE", help="paths, one a line, or an access log")
    g = p.add_argument_group("objective")
    g.add_argument(
        "--p99-ms",
        type=float,
        help=f"p99 latency bound (default {P99_FACTOR:g} x the fastest shape's median p99)",
    )
    g.add_argument(
        "--tie",
        type=float,
        default=TIE * 100,
        help=f"percent of the best throughput within which shapes tie (default {TIE:.0%}); "
        "ties go to fewer connections, then less memory",
    )
    g.add_argument(
        "--memory-budget-gib",
        type=float,
        help="memory the daemons may take (default: half of the machine's)",
    )
    s = p.add_argument_group("search space (apache_conf's sizing rules)")
    s.add_argument("--max-processes", type=int, help="at most this many daemon processes")
    s.add_argument("--max-threads", type=int, help="at most this many threads per process")
    s.add_argument("--hosts", type=int, default=1, help="web hosts sharing PostgreSQL (1)")
    s.add_argument("--cores", type=int, help="CPU cores (default: this machine)")
    s.add_argument("--memory-gib", type=float, help="memory in GiB (default: this machine)")
    s.add_argument("--max-connections", type=int, help="max_connections (default: SHOW)")
    s.add_argument("--superuser-reserved", type=int, help="superuser_reserved_connections")
    s.add_argument("--others", type=int, help="connections used by others")
    s.add_argument("--spare", type=int, help="connections kept free (default 2)")
    s.add_argument("--database-url", help="the site's PostgreSQL (default: DATABASE_URL)")
    p.add_argument("--out", type=Path, default=TUNE_DIR, help="parent of the results folder")
    p.add_argument(
        "--docs-from",
        type=Path,
        metavar="DIR",
        help="do not measure: rewrite docs/tuning.md's generated section from a run folder",
    )
    p.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    return p


def check_args(args):
    """Fill the --quick/full defaults; TuneError for values that cannot run."""
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.duration < 1 or args.warmup < 0 or args.repeat < 1:
        raise TuneError("--duration must be >= 1, --warmup >= 0 and --repeat >= 1")
    if args.concurrency < 1 or args.wrk_threads < 1:
        raise TuneError("--concurrency and --wrk-threads must be >= 1")
    if args.p99_ms is not None and not args.p99_ms > 0:
        raise TuneError("--p99-ms must be a positive number of milliseconds")
    if not 0 <= args.tie < 50:
        raise TuneError("--tie is a percentage from 0 to 50")
    if args.memory_budget_gib is not None and not args.memory_budget_gib > 0:
        raise TuneError("--memory-budget-gib must be positive")


def build_space(args):
    """The search Space: this machine (or --cores/--memory-gib) and the budget."""
    options = {
        key: getattr(args, key)
        for key in ("max_connections", "superuser_reserved", "others", "spare", "database_url")
    }
    budget = inputs.resolve_budget(options, sys.stderr)
    machine = Machine.detect(args.cores, args.memory_gib)
    return Space(machine, budget, args.hosts, args.max_processes, args.max_threads)


def describe_run(run):
    """One progress line for a finished run (or its failure)."""
    if run.get("error"):
        return f"FAILED: {run['error']}"
    return (
        f"{run['rps']:7.1f} req/s  p50 {run['latency_ms']['p50']:.1f} ms  "
        f"p99 {run['latency_ms']['p99']:.1f} ms  non-2xx {run['non2xx']}  "
        f"RSS/process {(run['rss_per_process_bytes'] or 0) / 2**20:.0f} MiB  "
        f"backends {run['backends_max']}  CPU other {run['cpu_percent']['other']:.0f}%"
    )


class Tuner(Session):
    """The tuner's run: the coarse grid, then the search around the best shape."""

    def __init__(self, args, space, folder):
        self.args = args
        self.space = space
        self.folder = folder
        self.runs = []
        self.phases = []
        self.paths = None
        self.mix_source = None
        self.bar = None

    def prepare(self):
        """The cluster and demo data, and the URL mix (demo pages or --url/--urls)."""
        print("setting up the tuner's PostgreSQL cluster and demo data ...", file=sys.stderr)
        max_connections = max(100, self.space.budget.max_connections + 10)
        self.start_database("tune-work-", max_connections)
        operator = mix.operator_paths(self.args.url, self.args.urls)
        if operator is None:
            conn = self.database.cluster.connect(DB_NAME)
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT id FROM catalog_item ORDER BY id LIMIT %s", [mix.DEMO_ITEMS]
                    )
                    item_ids = [row[0] for row in cur.fetchall()]
            finally:
                conn.close()
            self.paths = mix.demo_paths(item_ids)
            self.mix_source = "demo pages"
        else:
            self.paths = operator
            self.mix_source = "--urls/--url"
        mix.write_mix(self.paths, self.folder / "mix.txt")

    def run(self):
        """The coarse grid, then the search around the best shape, each --repeat times."""
        args = self.args
        measurer = Measurer(self.database, self.folder / "mix.txt", args, self.folder / "logs")
        coarse = self.space.coarse(args.quick)
        refine = (2 if args.quick else 4) + 1
        self.bar = ProgressBar(
            (len(coarse) + refine) * args.repeat,
            args.warmup + args.duration + START_STOP_SECONDS,
        )

        def measure(phase, keys):
            # Recorded as it starts, so that an interrupted run still says what it did.
            self.phases.append({"name": phase, "shapes": [label(key) for key in keys]})
            self.bar.total = self.bar.done + len(keys) * args.repeat
            if phase == "coarse":
                self.bar.grow(refine * args.repeat)
            for round_no in range(1, args.repeat + 1):
                # Each round starts one shape later, so no shape always runs first or last.
                shift = (round_no - 1) % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    self.bar.begin(f"{phase}, round {round_no}/{args.repeat}, {label(key)}")
                    run = measurer.run(key, phase, round_no)
                    self.runs.append(run)
                    self.bar.finish(describe_run(run))
            return summarise(self.runs, self.space)

        try:
            objective = self.objective()

            def pick(summaries):
                return choose(summaries, self.space, objective).chosen or best_key(summaries)

            search(self.space, measure, quick=args.quick, pick=pick)
        finally:
            self.bar.close()

    def objective(self):
        """The Objective from the arguments (p99 bound, tie margin, memory, hosts)."""
        args = self.args
        memory = int(args.memory_budget_gib * 2**30) if args.memory_budget_gib else None
        return Objective(args.p99_ms, args.tie / 100, memory, args.hosts)


def assemble(tuner, argv, started, wall, interrupted):
    """The result dict (meta, phases, runs, summaries, choice, noise)."""
    space = tuner.space
    summaries = summarise(tuner.runs, space)
    objective = tuner.objective()
    choice = choose(summaries, space, objective) if summaries else None
    meta = report.meta(tuner, argv, started, wall, interrupted, objective)
    return report.result_dict(meta, tuner.phases, tuner.runs, summaries, choice, noise(summaries))


def write_outputs(result, folder):
    """result.json, report.md, chart.png, and tuned.conf/tuned.env when a shape was chosen."""
    report.write_json(result, folder / "result.json")
    report.write_markdown(result, folder / "report.md")
    chart.write_chart(result, folder / "chart.png")
    if result["choice"]["chosen"]:
        command = f"python -m apache_conf.tune (from {folder.name}/result.json)"
        files = tuned_outputs(result, inputs.site_from_options({}), command)
        for name, text in files.items():
            (folder / name).write_text(text)


def main(argv=None):
    """``python -m bench.tune``: exit 0 (a shape chosen), 1 (none, or set-up failed), 2, 130."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.docs_from:
        try:
            report.update_docs(report.load(args.docs_from), args.docs_from, args.docs)
        except (TuneError, OSError) as exc:
            print(f"python -m bench.tune: {exc}", file=sys.stderr)
            return 2
        print(f"{args.docs}: generated section rewritten from {args.docs_from}")
        return 0
    try:
        check_args(args)
        wrk_binary()  # refused before any set-up: no wrk, or no matplotlib for the chart
        if importlib.util.find_spec("matplotlib") is None:
            raise TuneError("matplotlib is missing: pip install -e '.[bench]' (./deploy.sh setup)")
        mix.operator_paths(args.url, args.urls)
        space = build_space(args)
        space.coarse(args.quick)
    except (TuneError, SizingError, mix.MixError, RuntimeError) as exc:
        print(f"python -m bench.tune: {exc}", file=sys.stderr)
        for line in getattr(exc, "details", ()):
            print(line, file=sys.stderr)
        return 2
    folder = results_folder(args.out)
    tuner = Tuner(args, space, folder)
    done = drive(
        tuner,
        "python -m bench.tune",
        lambda started, wall, interrupted: assemble(tuner, argv, started, wall, interrupted),
    )
    if done is None:
        shutil.rmtree(folder, ignore_errors=True)
        return 1
    result, interrupted = done
    write_outputs(result, folder)
    print(report.render_markdown(result))
    print(f"results: {folder}/ (result.json, report.md, chart.png, tuned.conf, tuned.env)")
    if interrupted:
        return 130
    return 0 if result["choice"]["chosen"] else 1


if __name__ == "__main__":
    sys.exit(main())
