"""Django's test runner, recording every test's outcome into a JSON file for the comparison.

``runtests.py`` prints results for people; the comparison with the expected failures
needs each test id and its outcome, the driver really used and the engine's mode.
"""

import json
import os
import time
import unittest

from django.test.runner import DiscoverRunner


def _outcome_key(test):
    # Errors in setUpClass/tearDownClass arrive as _ErrorHolder, whose id() names the class.
    return test.id()


class RecordingResult(unittest.TextTestResult):
    outcomes = {}
    slow = {}  # test id -> seconds, for tests over SLOW seconds
    SLOW = 1.0

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        seconds = time.monotonic() - self._started
        if seconds >= self.SLOW:
            self.slow[_outcome_key(test)] = round(seconds, 2)

    def _record(self, test, outcome):
        key = _outcome_key(test)
        if outcome in ("ok", "skipped") and self.outcomes.get(key) in ("failure", "error"):
            return  # a failed subtest wins over the test's final success
        self.outcomes[key] = outcome

    # unittest's one hook per outcome (alike by its API): each passes its outcome to _record.
    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure")

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failure" if failed else "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "expected_failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected_success")


class RecordingRunner(DiscoverRunner):
    def get_resultclass(self):
        return super().get_resultclass() or RecordingResult

    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        self._write(result)
        return result

    def _write(self, result):
        import django
        from django.db import connections
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        import persistent_backend

        engines = {alias: type(connections[alias]).__module__ for alias in connections}
        stores = {
            alias: {k: v for k, v in store.items() if k in ("mode", "opened", "reuses", "requests")}
            for alias, store in persistent_backend.stats().items()
        }
        payload = {
            "django": django.get_version(),
            "driver": "psycopg" if is_psycopg3 else "psycopg2",
            "engines": engines,
            "stores": stores,
            "tests_run": result.testsRun,
            "outcomes": RecordingResult.outcomes,
            "slow": RecordingResult.slow,
        }
        with open(os.environ["PERSISTENT_SUITE_RESULTS"], "w") as fh:
            json.dump(payload, fh, indent=1, sort_keys=True)
