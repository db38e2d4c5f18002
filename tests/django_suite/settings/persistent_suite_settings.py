"""Settings for Django's own ``runtests.py`` against persistent_backend.

Read from the environment that ``tests/django_suite`` sets for each run:
``PERSISTENT_SUITE_PORT`` (the throwaway cluster, trust auth on 127.0.0.1),
``PERSISTENT_SUITE_MODE`` (``thread`` | ``pool``), ``PERSISTENT_SUITE_DRIVER``
(``psycopg2`` | ``psycopg``) and ``PERSISTENT_SUITE_RESULTS`` (where the runner writes
each test's outcome). Database names carry the driver and mode, so that runs can share
the cluster at the same time. Django imports psycopg 3 whenever it can, so the psycopg2 runs hide
it before Django's PostgreSQL backend is imported.
"""

import os
import sys

# Django's own test settings of this version (SECRET_KEY, the MD5 hasher, USE_TZ, and
# DEFAULT_AUTO_FIELD before Django 6.0), from the tests/ folder runtests.py runs in; only
# the databases are replaced below.
from test_sqlite import *  # noqa: F403

DRIVER = os.environ["PERSISTENT_SUITE_DRIVER"]
if DRIVER == "psycopg2":
    sys.modules["psycopg"] = None
elif DRIVER != "psycopg":
    raise RuntimeError(f"PERSISTENT_SUITE_DRIVER={DRIVER!r}: use psycopg2 or psycopg")


def _database(name):
    return {
        "ENGINE": "persistent_backend",
        "NAME": name,
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ["PERSISTENT_SUITE_PORT"],
        "OPTIONS": {"persistent": {"mode": os.environ["PERSISTENT_SUITE_MODE"]}},
    }


_RUN = f"{DRIVER}_{os.environ['PERSISTENT_SUITE_MODE']}"
DATABASES = {"default": _database(f"django_{_RUN}"), "other": _database(f"django_other_{_RUN}")}
TEST_RUNNER = "persistent_suite_runner.RecordingRunner"
