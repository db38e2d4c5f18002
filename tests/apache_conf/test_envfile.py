"""The production env file: lines the install owns are set, the operator's are kept."""

from pathlib import Path

import pytest

from apache_conf import envfile


def wanted(**extra):
    values = dict(
        database_url="postgres://site:pw@db.internal:5432/site",
        server_name="www.example.org",
        https="tls",
        persistent_mode="process",
        var_dir=Path("/srv/site/var"),
    )
    return envfile.Wanted(**{**values, **extra})


def test_allowed_hosts_merge_keeps_the_operators_and_the_loopback_names():
    merged = envfile.merge_hosts("example.org, www.example.org,localhost", "www.example.org")
    assert merged == "www.example.org,example.org,localhost,127.0.0.1,[::1]"
    assert envfile.merge_hosts(None, "a.test") == "a.test,localhost,127.0.0.1,[::1]"


def test_a_new_file_gets_a_secret_and_every_line_the_variant_needs():
    values = wanted().values({})
    assert len(values["DJANGO_SECRET_KEY"]) == 80
    text = envfile.render("", values)
    assert text.startswith("# Production settings")
    for line in (
        "DATABASE_URL=postgres://site:pw@db.internal:5432/site",
        "DJANGO_DEBUG=0",
        "DJANGO_HTTPS=1",
        "DJANGO_BEHIND_TLS_PROXY=0",
        "DJANGO_VAR_DIR=/srv/site/var",
        "PERSISTENT_MODE=process",
    ):
        assert f"\n{line}\n" in text


@pytest.mark.parametrize(
    "https, lines",
    [
        ("proxy", ("DJANGO_HTTPS=1", "DJANGO_BEHIND_TLS_PROXY=1")),
        ("http", ("DJANGO_HTTPS=0", "DJANGO_BEHIND_TLS_PROXY=0")),
    ],
)
def test_https_modes(https, lines):
    text = envfile.render("", wanted(https=https).values({}))
    for line in lines:
        assert f"\n{line}\n" in text


def test_an_update_keeps_the_secret_the_comments_and_other_settings(tmp_path):
    path = tmp_path / "production.env"
    path.write_text(
        "# mine\nDJANGO_SECRET_KEY=kept-secret\nDASHBOARD_METRICS_TOKEN=tok\n"
        "PERSISTENT_MODE=pool\nPERSISTENT_MODE=pool\nDJANGO_ALLOWED_HOSTS=old.example.org\n"
    )
    current = envfile.read(path)
    text = envfile.render(path.read_text(), wanted().values(current))
    lines = text.splitlines()
    assert lines[:3] == ["# mine", "DJANGO_SECRET_KEY=kept-secret", "DASHBOARD_METRICS_TOKEN=tok"]
    assert lines.count("PERSISTENT_MODE=process") == 1 and "PERSISTENT_MODE=pool" not in text
    assert "DJANGO_ALLOWED_HOSTS=www.example.org,old.example.org,localhost,127.0.0.1,[::1]" in lines


def test_values_the_file_cannot_carry_are_refused():
    with pytest.raises(envfile.EnvFileError, match="percent-encode"):
        wanted(database_url="postgres://site:p w#x@db/site").values({})


def test_masked_hides_the_secret_and_the_password():
    text = envfile.render("", wanted().values({}))
    shown = envfile.masked(text)
    assert "DJANGO_SECRET_KEY=********\n" in shown
    assert "DATABASE_URL=postgres://site:********@db.internal:5432/site\n" in shown
    assert ":pw@" not in shown
