"""The expected-failures file parses, and the comparison fails on every kind of surprise.

The Django-suite runs themselves are ``tests/django_suite/run`` (CI); here, the file and
the rules that turn a run's recorded outcomes into a verdict.
"""

import pytest

from tests.django_suite.suite import EXPECTED_FILE, LABELS, compare, parse_expected, selected

ID = "backends.base.test_base.ConnectionHealthChecksTests.test_health_checks_enabled"
OTHER = "queries.tests.Queries1Tests.test_ticket1050"


def test_expected_failures_file_names_each_test_and_why():
    entries = parse_expected(EXPECTED_FILE.read_text())
    assert entries, "the file lists the health-check tests that fail by design"
    for entry in entries:
        assert entry.test_id.split(".")[0] in LABELS, entry  # run by the default labels
        assert entry.test_id.count(".") >= 3 and len(entry.why) > 20, entry


def test_bad_line_is_refused_with_its_number():
    with pytest.raises(ValueError, match=":2: want"):
        parse_expected(f"# comment\n{ID}  no reason given\n")


def test_listed_failure_passes_the_comparison():
    expected = parse_expected(f"{ID}  */*/*  fails by design, see the README\n")
    result = compare({ID: "failure", OTHER: "ok"}, expected, "5.2.19/psycopg2/pool")
    assert result.ok and result.expected_failed == [ID]
    assert result.counts == {"failure": 1, "ok": 1}


def test_unlisted_failure_fails():
    result = compare({ID: "ok", OTHER: "error"}, [], "5.2.19/psycopg2/pool")
    assert not result.ok and result.unexpected == [OTHER]


def test_listed_test_that_passes_fails():
    expected = parse_expected(f"{ID}  */*/*  fails by design, see the README\n")
    result = compare({ID: "ok"}, expected, "6.1.3/psycopg/thread")
    assert not result.ok and result.now_passing == [ID]


def test_listed_test_that_did_not_run_fails():
    expected = parse_expected(f"{ID}  */*/*  fails by design, see the README\n")
    result = compare({OTHER: "ok"}, expected, "6.1.3/psycopg/thread")
    assert not result.ok and result.not_run == [ID]
    assert not compare({ID: "skipped"}, expected, "6.1.3/psycopg/thread").ok


def test_entries_apply_to_the_runs_they_name():
    expected = parse_expected(f"{ID}  5.2.*/psycopg/pool  only there, for a reason\n")
    assert compare({ID: "failure"}, expected, "5.2.19/psycopg/pool").ok
    assert not compare({ID: "failure"}, expected, "5.2.19/psycopg2/pool").ok
    assert compare({ID: "ok"}, expected, "6.0.1/psycopg/pool").ok


def test_labels_run_decide_which_entries_apply():
    expected = parse_expected(f"{ID}  */*/*  fails by design, see the README\n")
    assert selected(expected, ["backends"]) == expected
    assert selected(expected, ["backends.base.test_base.ConnectionHealthChecksTests"]) == expected
    assert selected(expected, ["basic", "back"]) == []
