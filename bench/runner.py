"""The run: set up the database, then the interleaved rounds, with progress on stderr.

Order: for each round, for each variant, for each configuration: start the site, then
for each page: one check request, warm-up load, then the measured load while sampling
pg_stat_activity, with pg_stat_statements read just before and just after. Every
configuration runs once per round, and each round starts one configuration later
(A B C, B C A, C A B, ...): drift of the machine over the run hits all of them alike,
and so does whatever favours a place in the round (the first after the previous
variant's servers stopped, the last before a checkpoint ...). With ``--slices N`` a
round of a variant runs all its configurations at once instead, in turns
(interleaved.py): drift within the round then meets them alike too.
"""

import sys
from dataclasses import dataclass

from bench.configs import METRICS_SWITCH, pages
from bench.database import BackendSampler, backend_figures, statements_delta
from bench.interleaved import SlicedRound
from bench.load import run_wrk
from bench.profiling import Profiler
from bench.progress import Progress, describe_run
from bench.server import SiteUnderTest
from bench.session import Session

TOP_STATEMENTS = 8


def round_order(configs, round_no):
    """The configurations in the order round ``round_no`` (from 1) runs them: each round
    starts one later, so over as many rounds as configurations each takes every place."""
    shift = (round_no - 1) % len(configs) if configs else 0
    return list(configs[shift:]) + list(configs[:shift])


@dataclass
class Options:
    """What one bench run measures: variants, configurations, pages, durations, rounds."""

    variants: list
    configs: list
    page_keys: tuple = ("items", "nodb")
    duration: int = 10
    warmup: int = 2
    concurrency: int = 8
    repeat: int = 3
    wrk_threads: int = 1
    psycopg: str = "2"
    profile: bool = False
    out_dir: object = None
    quick: bool = False
    config_set: str | None = None  # --set, for the record
    slices: int = 1  # > 1: every site of a variant up at once, in turns (interleaved.py)


class Bench(Session):
    """The bench's run: every configuration, page and round (see the module docstring)."""

    def __init__(self, options):
        self.options = options
        self.page_queries = {}
        self.metrics_switch_effective = False
        self.middleware = {}
        self.runs = []
        self.item_id = None
        self.logs_dir = options.out_dir / "logs"
        # Raises at once, before any set-up, when --profile has no py-spy to run.
        self.profiler = Profiler(options.out_dir / "profiles", options.profile)

    # -- set-up ------------------------------------------------------------------------
    def prepare(self):
        """The cluster and demo data; probe the pages in-process (status, queries,
        whether the metrics switch changes MIDDLEWARE)."""
        print("setting up the bench's PostgreSQL cluster and demo data ...", file=sys.stderr)
        self.start_database("bench-work-", max_connections=self.max_connections())
        self.item_id = self.database.first_item_id()
        item_path = f"/items/{self.item_id}/"
        probe = self.database.probe(self.work_dir, item_path)
        if probe["status"] != {"items": 200, "nodb": 200}:
            raise RuntimeError(f"the site does not serve its pages in-process: {probe}")
        without = self.database.probe(self.work_dir, item_path, env={METRICS_SWITCH: "0"})
        self.page_queries = probe["queries"]
        self.metrics_switch_effective = probe["middleware"] != without["middleware"]
        self.middleware = {"with": probe["middleware"], "without": without["middleware"]}

    def max_connections(self):
        """The cluster's max_connections: 200, or what every site of the widest variant
        could hold at once when they are all up (--slices)."""
        opts = self.options
        if opts.slices == 1:
            return 200
        widest = max(variant.processes * variant.threads for variant in opts.variants)
        return max(200, widest * len(opts.configs) + 20)

    def active_configs(self):
        """The configurations to run (the no-metrics one only if the switch does something)."""
        configs = list(self.options.configs)
        if not self.metrics_switch_effective:
            configs = [config for config in configs if config.metrics]
        return configs

    # -- the rounds --------------------------------------------------------------------
    def run(self):
        """Every round: each variant, configuration and page (configurations rotated)."""
        opts = self.options
        configs = self.active_configs()
        page_list = self._pages()
        steps = opts.repeat * len(opts.variants) * len(page_list)
        if opts.slices > 1:  # a step: one cycle, every configuration's slice
            progress = Progress(steps * opts.slices, len(configs) * (opts.duration / opts.slices))
        else:  # a step: one configuration's run
            progress = Progress(steps * len(configs), opts.warmup + opts.duration + 1.5)
        for round_no in range(1, opts.repeat + 1):
            for variant in opts.variants:
                order = round_order(configs, round_no)
                if opts.slices > 1:
                    SlicedRound(self, round_no, variant, order, page_list, progress).run()
                    continue
                for config in order:
                    self._run_config(round_no, variant, config, page_list, progress)
        return self.runs

    def _pages(self):
        return pages(self.item_id, self.options.page_keys)

    def _run_config(self, round_no, variant, config, page_list, progress):
        opts = self.options
        left = self.database.wait_no_backends()
        if left:
            progress.note(f"warning: {left} backend(s) of the previous configuration remain")
        site = SiteUnderTest(self.database, config, variant, opts.psycopg)
        where = f"round {round_no}/{opts.repeat} {variant.name} {config.label(variant)}"
        try:
            site.start()
        except Exception as exc:  # noqa: BLE001 - reported, the other configurations go on
            self.save_log(round_no, variant, config, str(exc))
            for page in page_list:
                progress.step(f"{where} {page.path}")
                run = self.base_run(round_no, variant, config, page)
                run["error"] = f"server did not start: {exc}"
                self.runs.append(run)
                progress.finish_step(describe_run(run))
            return
        try:
            for page in page_list:
                progress.step(f"{where} {page.path}")
                run = self._measure(site, round_no, variant, config, page)
                if run.get("error"):
                    self.save_log(round_no, variant, config, site.logs())
                self.runs.append(run)
                progress.finish_step(describe_run(run))
        finally:
            site.stop()

    def base_run(self, round_no, variant, config, page):
        return {
            "round": round_no,
            "variant": variant.name,
            "config": config.name,
            "mode": config.mode_for(variant),
            "page": page.key,
            "path": page.path,
            "error": None,
        }

    def _measure(self, site, round_no, variant, config, page):
        opts = self.options
        run = self.base_run(round_no, variant, config, page)
        url = site.url + page.path
        clients = variant.load(opts.concurrency)
        try:
            site.check(page.path)
            if opts.warmup > 0:
                run_wrk(url, opts.warmup, clients, opts.wrk_threads)
            # Counters are read with the server idle, so every request between the two
            # readings is complete: its statements and itself are both counted.
            before = site.counters()
            with BackendSampler(self.database, role=site.role) as sampler:
                with self.profiler.record(site.daemon_pids(), opts.duration, run):
                    result = run_wrk(url, opts.duration, clients, opts.wrk_threads)
            after = site.counters()
        except Exception as exc:  # noqa: BLE001 - reported, the other pages go on
            run["error"] = str(exc)
            return run
        return self.figures(run, site, page, result, sampler.samples, before, after)

    def figures(self, run, site, page, result, samples, before, after):
        """``run`` with wrk's ``result``, the backends ``samples`` and what the counters
        say between ``before`` and ``after`` (statements, requests served)."""
        total, per_statement = statements_delta(before.statements, after.statements)
        if site.bouncer is not None:
            plan = site.bouncer.plan
            run["pgbouncer_pool"] = {
                "default_pool_size": plan.pool_size,
                "reserve_pool_size": plan.reserve_pool_size,
            }
        served = after.served - before.served
        requests = max(served, 1)
        own = self.page_queries.get(page.key, 0)
        run.update(result)
        run.update(backend_figures(samples))
        run.update(
            served_requests=served,
            backend_samples=[count for _, count in samples],
            statements=total,
            statements_per_request=total / requests,
            page_queries=own,
            extra_statements_per_request=total / requests - own,
            top_statements=[
                {"per_request": round(calls / requests, 4), "query": text}
                for calls, text in per_statement[:TOP_STATEMENTS]
            ],
        )
        return run

    def save_log(self, round_no, variant, config, text):
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        path = self.logs_dir / f"round{round_no}-{variant.name}-{config.name}.log"
        path.write_text(text)
