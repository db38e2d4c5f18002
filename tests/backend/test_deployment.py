"""The deployment vocabulary: what the backend writes is what the dashboard and the
sizing probe read back (one module, so the tests pin the shared format)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from persistent_backend import deployment
from persistent_backend.environment import ServerShape, resolve_mode
from persistent_backend.options import Options

pytestmark = pytest.mark.no_db


@pytest.mark.parametrize(
    ("prefix", "host"),
    [("site", "web1"), ("shop", "h" * 80), ("p" * 80, "web1"), ("café", "hôte-é" * 10)],
)
def test_application_name_round_trip_within_63_bytes(prefix, host):
    name = deployment.application_name(prefix, 123456, host=host)
    assert len(name.encode()) <= deployment.APPLICATION_NAME_MAX_BYTES
    parsed_prefix = name.rsplit(":", 2)[0]
    owner = deployment.parse_application_name(name, parsed_prefix)
    assert owner is not None and owner[1] == 123456
    if len(f"{prefix}:{host}:123456".encode()) <= 63:
        assert owner == (host, 123456) and parsed_prefix == prefix


@pytest.mark.parametrize(
    "name",
    [None, "", "psql", "site:web1", "site:web1:abc", "other:web1:42", "site:web1:-42"],
)
def test_other_clients_are_not_the_site(name):
    assert deployment.parse_application_name(name, "site") is None


def test_host_part():
    assert deployment.host_part("web7") == "web7"
    assert deployment.host_part(None) == deployment.short_hostname()


@pytest.mark.parametrize(
    "settings_dict",
    [
        {},
        {"OPTIONS": {}},
        {"OPTIONS": {"application_name": "shop"}},
        {"OPTIONS": {"application_name": "shop", "persistent": {"application_name": "web"}}},
        {"OPTIONS": {"persistent": {"application_name": "web"}}},
        {"OPTIONS": {"persistent": {"mode": "pool"}}},
    ],
)
def test_prefix_is_the_backends(settings_dict):
    expected = Options.from_settings(settings_dict).application_name
    assert deployment.application_prefix(settings_dict) == expected


@pytest.mark.parametrize("threads", [1, 2, 15])
def test_mode_for_threads_is_what_auto_picks_under_mod_wsgi(threads):
    auto, _ = resolve_mode(Options(), ServerShape("mod_wsgi", 2, threads))
    assert deployment.mode_for_threads(threads) == auto


@pytest.mark.parametrize(
    ("persistent", "on"),
    [
        (None, False),
        ("yes", False),
        ({}, False),
        ({"pgbouncer": 1}, False),
        ({"pgbouncer": True}, True),
    ],
)
def test_pgbouncer_switch(persistent, on):
    assert deployment.behind_pgbouncer({"OPTIONS": {"persistent": persistent}}) is on


def test_options_refuse_what_the_switch_reads_as_off():
    with pytest.raises(ImproperlyConfigured):
        Options.from_settings({"OPTIONS": {"persistent": {"pgbouncer": 1}}})


def test_usable_connections():
    assert deployment.usable_connections(100, 3, 2) == 95
