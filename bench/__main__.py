"""``python -m bench`` (``./deploy.sh bench``): every configuration, side by side, one run.

See ``--help``. Results go to ``bench/results/<timestamp>/`` (results.json, results.md,
results.png, logs/ of failed configurations, profiles/ with --profile).
"""

import argparse
import shlex
import sys
from pathlib import Path

from bench import published, report, targets
from bench.configs import (
    CONFIG_SETS,
    CONFIGS,
    DEFAULT_SET,
    DEFAULT_VARIANTS,
    METRICS_SWITCH,
    NAMED_VARIANTS,
    NO_METRICS,
    parse_variant,
    select_configs,
)
from bench.load import wrk_version
from bench.machine import describe
from bench.results import results_folder
from bench.runner import Bench, Options
from bench.server import FRONT_END_ARGS
from bench.session import drive
from bench.summary import summarise
from harness.pgbouncer import pgbouncer_version

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_DIR / "bench" / "results"
FULL = {"duration": 10, "warmup": 2, "repeat": 3}
QUICK = {"duration": 2, "warmup": 1, "repeat": 1}


def parser():
    """The argument parser of ``python -m bench``."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Serve the site under mod_wsgi-express in every database configuration, drive it "
            "with wrk, and compare requests/s, latency, PostgreSQL backends held and "
            "statements per request. Sets up its own PostgreSQL cluster (password auth)."
        ),
        epilog="Variants: "
        + ", ".join(f"{v.name}={v.shape}" for v in NAMED_VARIANTS.values())
        + "; configurations: "
        + ", ".join(c.name for c in CONFIGS)
        + "; sets: "
        + ", ".join(CONFIG_SETS),
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"one round of {QUICK['duration']}s runs after {QUICK['warmup']}s warm-up "
        "(about 2 minutes)",
    )
    p.add_argument(
        "--variant",
        action="append",
        metavar="V",
        help="server shape, repeatable: prefork (2x1), threaded (1x8), hybrid (2x4), wide "
        "(2x16, one wrk connection per thread), PxT or NAME=PxT (default: the set's, else "
        "prefork and threaded)",
    )
    p.add_argument(
        "--set",
        choices=list(CONFIG_SETS),
        help=f"a named bench: its configurations, variants and pages (default {DEFAULT_SET}; "
        "--list shows them); --config adds to it, --variant and --page replace its own",
    )
    p.add_argument(
        "--config",
        action="append",
        metavar="NAME",
        help=f"run only these configurations (repeatable; default: the set {DEFAULT_SET})",
    )
    p.add_argument(
        "--page",
        action="append",
        choices=["items", "nodb"],
        help="pages to load (repeatable; default: the set's, else items and nodb, the ceiling)",
    )
    p.add_argument(
        "--duration", type=int, help=f"seconds per measured run (default {FULL['duration']})"
    )
    p.add_argument(
        "--warmup",
        type=int,
        help=f"seconds of warm-up load before each run (default {FULL['warmup']})",
    )
    p.add_argument("--repeat", type=int, help=f"interleaved rounds (default {FULL['repeat']})")
    p.add_argument(
        "--slices",
        type=int,
        help="split each run into N slices of whole seconds: every configuration of a "
        "variant is up at once and they take turns, slice by slice, through the round, so "
        "the host's changing speed meets them alike (default: the set's, else 1: one "
        "configuration at a time)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="wrk connections (default 8; the wide variant drives one per thread)",
    )
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument(
        "--psycopg",
        choices=["2", "3"],
        default="2",
        help="driver for every configuration but django-pool (always psycopg 3); default 2",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the daemons with py-spy during each run (figures then not comparable)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="parent of the results folder")
    p.add_argument(
        "--publish",
        action="store_true",
        help="after a full run, copy it to bench/published/ and rewrite the docs' figures",
    )
    p.add_argument(
        "--list", action="store_true", help="list variants and configurations, then exit"
    )
    return p


def build_options(args, results_dir):
    """runner.Options from the arguments; ValueError for what cannot run."""
    defaults = QUICK if args.quick else FULL
    chosen = CONFIG_SETS[args.set] if args.set else None
    variants = [
        parse_variant(text)
        for text in (args.variant or (chosen and chosen.variants) or DEFAULT_VARIANTS)
    ]
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variants must have distinct names: {names}")
    page_keys = args.page or (chosen and chosen.pages) or ("items", "nodb")
    slices = args.slices
    if slices is None:
        slices = (not args.quick and chosen and chosen.slices) or 1
    options = Options(
        variants=variants,
        configs=select_configs([*(chosen.configs if chosen else ()), *(args.config or ())]),
        page_keys=tuple(key for key in ("items", "nodb") if key in page_keys),
        duration=args.duration if args.duration is not None else defaults["duration"],
        warmup=args.warmup if args.warmup is not None else defaults["warmup"],
        repeat=args.repeat if args.repeat is not None else defaults["repeat"],
        concurrency=args.concurrency,
        wrk_threads=args.wrk_threads,
        psycopg=args.psycopg,
        profile=args.profile,
        out_dir=results_dir,
        quick=args.quick,
        config_set=args.set,
        slices=slices,
    )
    if options.duration < 1 or options.warmup < 0 or options.repeat < 1:
        raise ValueError(
            "--duration must be >= 1, --warmup >= 0 and --repeat >= 1 (seconds are whole)"
        )
    if options.concurrency < 1:
        raise ValueError("--concurrency must be >= 1")
    if options.slices < 1 or options.duration % options.slices:
        raise ValueError(
            f"--slices must divide --duration ({options.duration} s) into whole seconds"
        )
    if options.slices > 1 and options.profile:
        raise ValueError("--profile samples whole runs: use it with --slices 1")
    return options


def assemble(bench, options, argv, started, wall, interrupted):
    """The results dict (meta, runs, summary, targets) while the cluster still answers."""
    variants = options.variants
    configs = bench.active_configs()
    skipped = []
    if len(configs) < len(options.configs):
        skipped.append(
            f"{NO_METRICS}: {METRICS_SWITCH}=0 does not change MIDDLEWARE (no "
            "metrics middleware to switch off), so it would repeat the paired mode's run"
        )
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "./deploy.sh bench" + (" " + shlex.join(argv) if argv else ""),
        "set": options.config_set,
        "machine": describe(),
        "postgres": bench.database.server_version(),
        "pgbouncer": pgbouncer_version(),
        "wrk": wrk_version(),
        "wall_seconds": round(wall),
        "options": {
            "quick": options.quick,
            "duration": options.duration,
            "warmup": options.warmup,
            "repeat": options.repeat,
            "concurrency": options.concurrency,
            "wrk_threads": options.wrk_threads,
            "psycopg": options.psycopg,
            "profile": options.profile,
            "pages": list(options.page_keys),
            "slices": options.slices,
        },
        "variants": [
            {
                "name": v.name,
                "processes": v.processes,
                "threads": v.threads,
                "clients": v.load(options.concurrency),
                "paired_mode": v.paired_mode,
            }
            for v in variants
        ],
        "configs_run": [
            {
                "name": c.name,
                "summary": c.summary,
                "label": {v.name: c.label(v) for v in variants},
                "env": {v.name: c.env(v, options.psycopg) for v in variants},
                "route": c.route,
            }
            for c in configs
        ],
        "front_end_args": list(FRONT_END_ARGS),
        "item_id": bench.item_id,
        "page_queries": bench.page_queries,
        "metrics_switch": METRICS_SWITCH,
        "metrics_switch_effective": bench.metrics_switch_effective,
        "middleware": bench.middleware,
        "skipped": skipped,
        "interrupted": interrupted,
    }
    results = {"meta": meta, "runs": bench.runs}
    results["summary"] = summarise(
        bench.runs, [v.name for v in variants], [c.name for c in configs], options.page_keys
    )
    results["targets"] = targets.evaluate(results)
    return results


def write_all(results, folder):
    """results.json, results.md and results.png into ``folder``."""
    report.write_json(results, folder / "results.json")
    report.write_markdown(results, folder / "results.md")
    report.write_chart(results, folder / "results.png")


def main(argv=None):
    """``python -m bench``: exit 0, 1 (set-up failed or runs failed), 2 (bad arguments), 130."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.list:
        for variant in NAMED_VARIANTS.values():
            print(
                f"variant {variant.name:<10} {variant.shape}  "
                f"(persistent_backend pairs with mode {variant.paired_mode}"
                + (f"; {variant.clients} wrk connections" if variant.clients else "")
                + ")"
            )
        for config in CONFIGS:
            print(f"config  {config.name:<32} {config.summary}")
        for chosen in CONFIG_SETS.values():
            print(f"set     {chosen.name:<12} {chosen.summary}: {', '.join(chosen.configs)}")
            if chosen.variants or chosen.pages or chosen.slices:
                print(
                    f"        variants {', '.join(chosen.variants or DEFAULT_VARIANTS)}; "
                    f"pages {', '.join(chosen.pages or ('items', 'nodb'))}; "
                    f"slices {chosen.slices or 1}"
                )
        return 0
    if args.publish and (args.quick or args.profile):
        print("--publish needs a full run: not --quick, not --profile", file=sys.stderr)
        return 2
    folder = results_folder(args.out)
    try:
        options = build_options(args, folder)
    except ValueError as exc:
        folder.rmdir()
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    try:
        bench = Bench(options)
    except RuntimeError as exc:
        folder.rmdir()
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    done = drive(
        bench,
        "python -m bench",
        lambda started, wall, interrupted: assemble(
            bench, options, argv, started, wall, interrupted
        ),
    )
    if done is None:
        if not any(folder.iterdir()):
            folder.rmdir()
        return 1
    results, interrupted = done
    write_all(results, folder)
    print()
    print(report.render_markdown(results, level=2))
    print(f"results: {folder}/results.md, results.json, results.png")
    if args.publish:
        try:
            published.publish_bench(folder)
            published.update(published.doc_files())
            print(f"published to {published.PUBLISHED_DIR}; docs' figures rewritten")
        except RuntimeError as exc:
            print(f"not published: {exc}", file=sys.stderr)
    failed = [run for run in results["runs"] if run.get("error")]
    if interrupted:
        return 130
    if failed:
        print(f"{len(failed)} run(s) failed: see the table and {folder}/logs/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
