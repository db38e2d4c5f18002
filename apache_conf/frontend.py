"""The Apache front end of a generated config, sized for the daemons behind it."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Frontend:
    """Apache's event MPM in front of the daemons: it only proxies to them and serves static.

    Sized like mod_wsgi-express: 10 + max(10, 1.5 x daemon capacity) workers, in at least
    two children, all started at once and kept (no spawn lag, no reaping), with one child's
    worth of spare threads, below MaxRequestWorkers so the MPM never logs AH10159 at rest.
    """

    wanted: int
    threads_per_child: int
    server_limit: int

    @classmethod
    def for_capacity(cls, capacity):
        """The front end sized for a daemon capacity (see the class docstring)."""
        wanted = 10 + max(10, math.ceil(1.5 * capacity))
        threads_per_child = min(25, math.ceil(wanted / 2))
        return cls(wanted, threads_per_child, math.ceil(wanted / threads_per_child))

    @property
    def max_request_workers(self):
        return self.server_limit * self.threads_per_child

    @property
    def start_servers(self):
        return self.server_limit

    @property
    def min_spare_threads(self):
        return self.threads_per_child

    @property
    def max_spare_threads(self):
        return self.max_request_workers
