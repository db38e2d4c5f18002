"""One worker of ``bench.request_cost``: ``python -m bench.cost_worker THREADS``.

Loads the site's settings with the page of bench/costpage.py, warms up, prints a JSON
line, then answers ``run N`` (serve N requests: CPU and wall seconds) and ``profile N``
(the same in this thread under cProfile) on stdin, one JSON line each.
"""

import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from harness.site import SITE_DIR

PAGE = "/cost/{id}/"
ITEMS = 100  # the page cycles over this many items
WARMUP = 300


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


if __name__ == "__main__":
    worker(int(sys.argv[1]))
