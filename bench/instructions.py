"""Instructions per request, counted: ``python -m bench.instructions`` (``--help``).

What a request costs the web process in CPU instructions, counted by valgrind's callgrind
instead of timed. A count does not depend on the host's other load, so differences of a
fraction of a percent that no timing here can resolve (docs/performance.md) show, and
show the same on every run: with the hash seed fixed (``PYTHONHASHSEED=0``), repeated
counts of one configuration agree to within a few hundred instructions per request.

Each configuration's worker (bench/cost_worker.py: the site's settings and middleware, the
page of 3 small SELECTs of bench/costpage.py, Django's ``WSGIHandler`` driven directly,
one thread) runs under callgrind twice, serving ``--requests`` more requests the second
time; the difference of the two totals divided by the difference of the requests is the
cost of one request, start-up and warm-up cancelled out. Only user-space instructions are
counted: system calls' own cost (the probe's ``poll()``) is not in them. The dashboard's
metrics middleware is left out: its publisher thread works per second, not per request,
and under callgrind a second holds some fifty times fewer requests.

Writes ``bench/published/instructions.json`` (or ``--out``), which docs/performance.md
quotes (``python -m bench.published`` renders the table).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.request_cost import BY_NAME, Config, workers_database
from harness.site import REPO_DIR, clean_environ

PUBLISHED = Path(__file__).resolve().parent / "published" / "instructions.json"
BASE_REQUESTS = 100  # served in both counts, after the worker's own warm-up
ENGINE = "persistent_backend"
CONFIGS = (
    BY_NAME["stock-prefork"],
    BY_NAME["persistent-prefork"],
    Config("persistent-prefork-thread", "prefork", ENGINE, "thread", False),
    Config("persistent-prefork-pool", "prefork", ENGINE, "pool", False),
)
CONFIGS_BY_NAME = {config.name: config for config in CONFIGS}
BASELINE = "stock-prefork"  # every mode is compared with Django's own
TOTALS = re.compile(r"^(?:totals|summary): *(\d+)", re.MULTILINE)


def totals(callgrind_out):
    """The instructions (Ir) a callgrind output file counted in all."""
    found = TOTALS.findall(callgrind_out)
    if not found:
        raise ValueError("no totals line in callgrind's output")
    return int(found[-1])


def count(config, site_env, requests):
    """Instructions of one worker process that serves ``requests`` requests after its
    warm-up, under callgrind (every thread counted)."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.cost_worker",
                "1",
            ],
            cwd=REPO_DIR,
            env={**clean_environ(), **site_env, **config.env(), "PYTHONHASHSEED": "0"},
            input=f"run {requests}\n",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        return totals(out.read_text())


def per_request(config, site_env, requests):
    """The counts of ``BASE_REQUESTS`` and ``BASE_REQUESTS + requests`` requests, and their
    difference per request."""
    low = count(config, site_env, BASE_REQUESTS)
    high = count(config, site_env, BASE_REQUESTS + requests)
    return {"counts": [low, high], "per_request": (high - low) / requests}


def measure(configs, site_env, requests, jobs):
    """{config name: figures}, the configurations counted ``jobs`` at a time."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {c.name: pool.submit(per_request, c, site_env, requests) for c in configs}
        return {name: future.result() for name, future in futures.items()}


def compare(results):
    """Each counted mode of the backend against ``BASELINE``, if that was counted."""
    rows = []
    for name in results:
        mode = CONFIGS_BY_NAME[name].mode
        if mode and BASELINE in results:
            ours, theirs = results[name]["per_request"], results[BASELINE]["per_request"]
            rows.append(
                {
                    "what": f"persistent_backend ({mode}) vs CONN_MAX_AGE=None",
                    "config": name,
                    "baseline": BASELINE,
                    "difference": ours - theirs,
                    "percent": 100 * (ours / theirs - 1),
                }
            )
    return rows


def render(data):
    """The docs' table (markdown) from instructions.json's dict."""
    meta = data["meta"]
    lines = [
        f"Counted on {meta['date']} ({meta['machine']}; psycopg{meta['psycopg']}, commit "
        f"{meta['commit'] or 'unknown'}) by `{meta['command']}`: instructions of the web "
        f"process per request (callgrind, user space, `PYTHONHASHSEED=0`; the difference "
        f"between serving {meta['base_requests']} and {meta['base_requests'] + meta['requests']}"
        " requests), prefork shape (one thread).",
        "",
        "| configuration | instructions per request |",
        "|---|---|",
    ]
    for name, figures in data["configs"].items():
        lines.append(f"| {name} | {figures['per_request']:,.0f} |")
    lines += ["", "| difference | instructions per request | share |", "|---|---|---|"]
    for row in data["comparisons"]:
        lines.append(f"| {row['what']} | {row['difference']:+,.0f} | {row['percent']:+.2f}% |")
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--requests", type=int, default=500, help="requests the second count serves more (500)"
    )
    p.add_argument("--only", nargs="+", choices=list(CONFIGS_BY_NAME), help="these only")
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="counts run at once (the cores)"
    )
    p.add_argument("--out", type=Path, default=PUBLISHED, help=f"default {PUBLISHED}")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if min(args.requests, args.jobs) < 1:
        print("bench.instructions: --requests and --jobs must be >= 1", file=sys.stderr)
        return 2
    if shutil.which("valgrind") is None:
        print(
            "bench.instructions: valgrind is not installed: apt-get install valgrind",
            file=sys.stderr,
        )
        return 2
    from bench.machine import describe
    from bench.results import run_meta, write_published

    configs = [CONFIGS_BY_NAME[name] for name in args.only or CONFIGS_BY_NAME]
    try:
        with workers_database("bench-instructions-") as site_env:
            results = measure(configs, site_env, args.requests, args.jobs)
    except subprocess.CalledProcessError as exc:
        print(
            f"bench.instructions: a worker failed under valgrind ({exc.returncode}): "
            f"{(exc.stderr or '').strip()[-2000:]}",
            file=sys.stderr,
        )
        return 1
    command = " ".join(["python -m bench.instructions", *(argv or sys.argv[1:])])
    data = {
        "meta": {
            **run_meta(describe(), command),
            "psycopg": site_env["DJANGO_PSYCOPG"],
            "base_requests": BASE_REQUESTS,
            "requests": args.requests,
        },
        "configs": results,
        "comparisons": compare(results),
    }
    return write_published(args.out, data, render(data))


if __name__ == "__main__":
    sys.exit(main())
