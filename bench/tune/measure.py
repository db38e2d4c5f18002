"""One measured run of one shape: start the site under mod_wsgi-express, warm up, load it
with wrk on the URL mix, and watch it.

While wrk runs, a sampler thread reads every daemon's RSS (psutil) and the site's
PostgreSQL backends (pg_stat_activity, through bench's BackendSampler). CPU is split by
reading cumulative CPU times before and after the load: the daemons, the Apache front end
(mod_wsgi-express's httpd and its other children), PostgreSQL (the postmaster and its
children), wrk itself, and everything else on the machine (other users of a shared
host: the noise). Figures are percent of one core.
"""

import os
import time
from pathlib import Path

import psutil

from apache_conf.tune import label, shape_of
from bench.configs import Config, Variant
from bench.database import BackendSampler
from bench.load import run_wrk
from bench.server import SiteUnderTest
from harness.sampling import Sampler

MIX_SCRIPT = Path(__file__).resolve().parent / "wrk_mix.lua"
#: The site as deployed: persistent_backend in the mode its shape pairs with (process for
#: one thread, a pool of max_size = threads otherwise), the dashboard's metrics on.
TUNED_CONFIG = Config(
    "persistent-paired",
    "persistent_backend in the shape's paired mode",
    engine="persistent_backend",
    persistent_mode="paired",
)
CPU_PARTS = ("daemons", "apache", "postgres", "wrk", "other")


def _tree(pid):
    """The process and its descendants (psutil.Process objects); [] if it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu(procs):
    """{pid: cpu seconds} of the processes still running."""
    out = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        out[proc.pid] = times.user + times.system
    return out


def _pid_from(path):
    try:
        text = Path(path).read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def _machine_busy():
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class RssSampler(Sampler):
    """Samples each daemon's RSS in a thread: the largest one process reached, and the
    largest sum over the daemons."""

    def __init__(self, pids, interval=0.5):
        super().__init__(interval, name="rss-sampler")
        self.procs = []
        for pid in pids:
            try:
                self.procs.append(psutil.Process(pid))
            except psutil.Error:
                pass
        self.per_process = 0
        self.total = 0

    def sample(self):
        total = 0
        for proc in self.procs:
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self.per_process = max(self.per_process, rss)
            total += rss
        self.total = max(self.total, total)


class Measurer:
    """Measures shapes against one database with one URL mix."""

    def __init__(self, database, mix_file, options, logs_dir):
        self.database = database
        self.mix_file = Path(mix_file)
        self.options = options
        self.logs_dir = Path(logs_dir)

    def run(self, key, phase, round_no):
        """Serve shape ``key``, warm up, load it with wrk while sampling; one run dict."""
        processes, threads = key
        shape = shape_of(processes, threads)
        run = {
            "phase": phase,
            "round": round_no,
            "shape": label(key),
            "processes": processes,
            "threads": threads,
            "mode": shape.mode,
            "started_at": time.time(),
            "error": None,
        }
        self.database.wait_no_backends()
        site = SiteUnderTest(self.database, TUNED_CONFIG, Variant(label(key), processes, threads))
        try:
            site.start()
        except Exception as exc:  # noqa: BLE001 - reported; the other shapes go on
            run["error"] = f"server did not start: {str(exc).splitlines()[0][:300]}"
            self._save_log(run, str(exc))
            return run
        try:
            run.update(self._load(site))
        except Exception as exc:  # noqa: BLE001 - reported; the other shapes go on
            run["error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            self._save_log(run, f"{exc}\n{site.logs()}")
        finally:
            site.stop()
        return run

    def _wrk(self, site, seconds):
        opts = self.options
        return run_wrk(
            site.url + "/",
            seconds,
            opts.concurrency,
            opts.wrk_threads,
            script=MIX_SCRIPT,
            args=[self.mix_file],
        )

    def _load(self, site):
        opts = self.options
        if opts.warmup > 0:
            self._wrk(site, opts.warmup)
        daemons = site.daemon_pids()
        if not daemons:
            raise RuntimeError("no daemon process found after the warm-up")
        httpd = _pid_from(site.server.server_root / "httpd.pid")
        postmaster = _pid_from(self.database.cluster.data_dir / "postmaster.pid")
        front = [p for p in _tree(httpd) if p.pid not in daemons] if httpd else []
        groups = {
            "daemons": [psutil.Process(pid) for pid in daemons],
            "apache": front,
            "postgres": _tree(postmaster) if postmaster else [],
        }
        before = {name: _cpu(procs) for name, procs in groups.items()}
        busy_before, children_before, clock = _machine_busy(), os.times(), time.monotonic()
        with BackendSampler(self.database, role=site.role) as backends, RssSampler(daemons) as rss:
            result = self._wrk(site, opts.duration)
        wall = time.monotonic() - clock
        children_after, busy_after = os.times(), _machine_busy()
        # Processes started during the load (new backends) count from zero.
        groups["postgres"] = _tree(postmaster) if postmaster else []
        cpu = {}
        for name, procs in groups.items():
            after = _cpu(procs)
            cpu[name] = sum(after[pid] - before[name].get(pid, 0.0) for pid in after)
        cpu["wrk"] = (children_after.children_user + children_after.children_system) - (
            children_before.children_user + children_before.children_system
        )
        cpu["other"] = max(0.0, (busy_after - busy_before) - sum(cpu.values()))
        held = backends.figures()
        statuses = result.get("statuses") or {}
        server_errors = sum(count for code, count in statuses.items() if code.startswith("5"))
        return {
            "rps": result["rps"],
            "ok": result["ok"],
            "non2xx": result["non2xx"],
            "statuses": statuses,
            "socket_errors": result["socket_errors"],
            "socket_error_kinds": result["errors"],
            "server_errors": server_errors,
            "latency_ms": result["latency_ms"],
            "seconds": result["seconds"],
            "daemons": len(daemons),
            "rss_per_process_bytes": rss.per_process or None,
            "rss_total_bytes": rss.total or None,
            "backends_max": held["backends_max"],
            "backends_mid": held["backends_mid"],
            "cpu_percent": {name: round(100 * cpu[name] / wall, 1) for name in CPU_PARTS},
        }

    def _save_log(self, run, text):
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        name = f"{run['phase'].replace(' ', '-')}-round{run['round']}-{run['shape']}.log"
        (self.logs_dir / name).write_text(text)
