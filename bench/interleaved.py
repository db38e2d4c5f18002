"""A round in slices (``--slices N``): every configuration's site up at once, taking turns.

The cores of a shared host change speed by tens of percent for 20-40 s at a time
(docs/performance.md, "In slices"), so two configurations measured one after the
other can meet different machines. Here a round of one variant starts the site of every
configuration, then for each page:

1. checks and warms each site, and reads its counters with it idle;
2. runs N cycles; in each, every site gets one slice of ``duration / N`` seconds of load,
   in an order that rotates by one each cycle and turns around every other cycle, so no
   configuration keeps a place (first after the previous one's load, last before ...);
3. reads the counters again.

A configuration's run is the sum of its slices: requests / seconds under load, responses
and errors added up, PostgreSQL backends sampled during its own slices only, statements
and requests served between the two readings. Its sessions and statements are told apart
from the other sites' by its login role (bench/database.py). Latency percentiles are the
median over its slices of each slice's percentile (wrk reports no histogram to merge).
"""

import statistics

from bench.database import BackendSampler
from bench.load import run_wrk
from bench.progress import describe_run
from bench.server import SiteUnderTest


def slice_order(count, cycle):
    """Indexes 0..count-1 in the order cycle ``cycle`` (from 0) runs them: rotated by one
    per cycle, reversed every other cycle."""
    order = [(cycle + i) % count for i in range(count)]
    return order[::-1] if cycle % 2 else order


def merge_slices(slices):
    """One wrk result from the results of a run's slices (see the module docstring)."""
    requests = sum(part["requests"] for part in slices)
    seconds = sum(part["seconds"] for part in slices)
    ok = sum(part["ok"] for part in slices)
    errors = {key: sum(part["errors"][key] for part in slices) for key in slices[0]["errors"]}
    statuses = {}
    for part in slices:
        for code, count in part.get("statuses", {}).items():
            statuses[code] = statuses.get(code, 0) + count
    latency = {
        key: statistics.median(part["latency_ms"][key] for part in slices)
        for key in ("p50", "p90", "p99")
    }
    latency["max"] = max(part["latency_ms"]["max"] for part in slices)
    latency["mean"] = (
        sum(part["latency_ms"]["mean"] * part["requests"] for part in slices) / requests
        if requests
        else 0.0
    )
    return {
        "requests": requests,
        "duration_us": round(seconds * 1e6),
        "bytes": sum(part["bytes"] for part in slices),
        "ok": ok,
        "non2xx": sum(part["non2xx"] for part in slices),
        "statuses": statuses,
        "errors": errors,
        "seconds": seconds,
        "rps": requests / seconds if seconds else 0.0,
        "ok_rps": ok / seconds if seconds else 0.0,
        "socket_errors": sum(errors.values()),
        "latency_ms": latency,
        "slices": [round(part["rps"], 1) for part in slices],
    }


class Contender:
    """One configuration's site in a sliced round, and what its slices gathered."""

    def __init__(self, site, run):
        self.site = site
        self.run = run  # the run record (its "error" set ends its part in the round)
        self.slices = []
        self.samples = []
        self.before = None

    @property
    def failed(self):
        return bool(self.run.get("error"))


class SlicedRound:
    """One round of one variant in slices, for ``bench`` (a runner.Bench)."""

    def __init__(self, bench, round_no, variant, configs, page_list, progress):
        self.bench = bench
        self.round_no = round_no
        self.variant = variant
        self.configs = configs
        self.pages = page_list
        self.progress = progress
        self.sites = {}  # configuration name -> its started site
        self.not_started = {}  # configuration name -> why its site did not start

    def run(self):
        bench = self.bench
        left = bench.database.wait_no_backends()
        if left:
            self.progress.note(f"warning: {left} backend(s) of the previous round remain")
        try:
            self._start_sites()
            for page in self.pages:
                self._run_page(page)
        finally:
            for site in self.sites.values():
                site.stop()

    def _where(self):
        opts = self.bench.options
        return f"round {self.round_no}/{opts.repeat} {self.variant.name}"

    def _start_sites(self):
        bench = self.bench
        for config in self.configs:
            site = SiteUnderTest(bench.database, config, self.variant, bench.options.psycopg)
            try:
                site.start()
            except Exception as exc:  # noqa: BLE001 - reported, the other configurations go on
                bench.save_log(self.round_no, self.variant, config, str(exc))
                self.not_started[config.name] = f"server did not start: {exc}"
                continue
            self.sites[config.name] = site

    def _run_page(self, page):
        bench, opts = self.bench, self.bench.options
        contenders = []
        for config in self.configs:
            run = bench.base_run(self.round_no, self.variant, config, page)
            if config.name in self.not_started:
                run["error"] = self.not_started[config.name]
            contenders.append(Contender(self.sites.get(config.name), run))
        clients = self.variant.load(opts.concurrency)
        for contender in contenders:
            self._guard(contender, self._prepare, contender, page, clients)
        seconds = opts.duration / opts.slices
        for cycle in range(opts.slices):
            self.progress.step(f"{self._where()} {page.path} cycle {cycle + 1}/{opts.slices}")
            done = []
            for index in slice_order(len(contenders), cycle):
                contender = contenders[index]
                if self._guard(contender, self._slice, contender, page, clients, seconds):
                    done.append(f"{contender.site.config.name} {contender.slices[-1]['rps']:.0f}")
            self.progress.finish_step("req/s: " + ", ".join(done))
        for contender in contenders:
            run = contender.run
            if not contender.failed:
                self._guard(contender, self._finish, contender, page)
            if contender.failed and contender.site is not None:
                bench.save_log(
                    self.round_no, self.variant, contender.site.config, contender.site.logs()
                )
            bench.runs.append(run)
            self.progress.note(f"{contender.run['config']}: {describe_run(run)}")

    def _guard(self, contender, step, *args):
        """Run ``step(*args)`` unless the contender failed already; a failure ends its
        part in the round (recorded in its run), not the others'."""
        if contender.failed:
            return False
        try:
            step(*args)
        except Exception as exc:  # noqa: BLE001 - reported, the other configurations go on
            contender.run["error"] = str(exc)
            return False
        return True

    def _prepare(self, contender, page, clients):
        opts = self.bench.options
        site = contender.site
        site.check(page.path)
        if opts.warmup > 0:
            run_wrk(site.url + page.path, opts.warmup, clients, opts.wrk_threads)
        contender.before = site.counters()

    def _slice(self, contender, page, clients, seconds):
        opts = self.bench.options
        site = contender.site
        with BackendSampler(self.bench.database, role=site.role, samples=contender.samples):
            result = run_wrk(site.url + page.path, seconds, clients, opts.wrk_threads)
        contender.slices.append(result)

    def _finish(self, contender, page):
        after = contender.site.counters()
        result = merge_slices(contender.slices)
        self.bench.figures(
            contender.run, contender.site, page, result, contender.samples, contender.before, after
        )
