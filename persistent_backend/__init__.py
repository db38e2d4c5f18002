"""persistent_backend: a Django ENGINE for PostgreSQL that keeps connections across requests.

Use ``"ENGINE": "persistent_backend"``; see docs/backend.md for the
modes and options, docs/guarantees.md for what it guarantees. Public helpers:

* ``stats()``: ``{alias: {...}}`` counters and connections of this process.
* ``current_connection_info(alias="default")``: the connection the current request used.
* ``close_all()``: close every idle kept connection of this process.
* ``pin(using=None)``: this unit of work keeps session state the backend cannot see (its
  connection is never replaced under it, and is reset at the end); see pinning.py.
"""

from persistent_backend import signals as _signals  # noqa: F401  (connects the receivers)
from persistent_backend.pinning import pin
from persistent_backend.registry import close_all
from persistent_backend.stats import current_connection_info, stats
from persistent_backend.stores import CheckoutTimeout

__all__ = ["CheckoutTimeout", "close_all", "current_connection_info", "pin", "stats"]
