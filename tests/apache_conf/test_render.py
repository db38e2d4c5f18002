"""Rendering: the committed reference configs, every variant through the real apache2ctl -t,
and the directives each config must carry."""

import re
import subprocess
import sys

import pytest

from apache_conf import render
from apache_conf.apachectl import StandaloneApache, module_config
from apache_conf.sizing import VARIANTS, Budget, Machine, plan
from tests.apache_conf.conftest import REPO_DIR
from tests.apache_conf.debian_copy import DebianCopy

FILES = {f"{variant}.conf" for variant in VARIANTS} | {"README"}


def local_site(work, **extra):
    return render.Site(
        server_name="127.0.0.1",
        site_root=REPO_DIR,
        venv=sys.prefix,
        env_file=work / "site.env",
        static_root=work / "static",
        log_dir=work / "apache" / "logs",
        **extra,
    )


def local_outputs(work, **extra):
    machine = Machine(cores=2, memory_bytes=4 * 1024**3)
    plans = [plan(v, machine, Budget(max_connections=100)) for v in VARIANTS]
    commands = {"install": "install", "curl": "curl", "uninstall": "uninstall"}
    return render.outputs(plans, local_site(work, **extra), "test", commands)


def directive(text, name):
    """The value of an MPM directive line ``    Name   value``."""
    return int(re.search(rf"^\s*{name}\s+(\d+)$", text, re.M).group(1))


def daemon_options(text):
    """WSGIDaemonProcess's options as a dict (continuation lines joined)."""
    block = re.search(r"^WSGIDaemonProcess (.*?)(?<!\\)\n", text, re.M | re.S).group(1)
    words = block.replace("\\\n", " ").split()
    return {k: v for k, _, v in (w.partition("=") for w in words[1:])}


# --- the committed reference configs ------------------------------------------------------
def test_generated_configs_match_the_generator():
    expected = render.reference_outputs()
    # pgbouncer.ini and userlist.txt come from pgbouncer_conf (tests/pgbouncer/test_conf.py).
    committed = {p.name for p in render.GENERATED_DIR.iterdir()} - {"pgbouncer.ini", "userlist.txt"}
    assert committed == set(expected) == FILES
    for name, text in expected.items():
        assert (render.GENERATED_DIR / name).read_text() == text, (
            f"apache_conf/generated/{name} drifted: run {render.REFERENCE_COMMAND}"
        )


def test_reference_command_writes_the_same_files(generate, tmp_path):
    result = generate(f"--reference --out {tmp_path}")
    assert result.returncode == 0, result.stderr
    for name in FILES:
        assert (tmp_path / name).read_text() == (render.GENERATED_DIR / name).read_text()
    refused = generate(f"--reference --processes 3 --out {tmp_path}")
    assert refused.returncode == 2 and "drop --processes" in refused.stderr


def test_reference_configs_pass_apache2ctl(shared_dir):
    for variant in VARIANTS:
        apache = StandaloneApache(shared_dir / variant, render.GENERATED_DIR / f"{variant}.conf")
        result = apache.config_test()
        assert result.returncode == 0, result.stdout + result.stderr + apache.conf.read_text()
        assert "Syntax OK" in result.stderr


# --- every variant, through the real Apache ------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_passes_apache2ctl(variant, shared_dir):
    files = local_outputs(shared_dir, maximum_requests=5000)
    conf = render.write(files, shared_dir / "conf")[VARIANTS.index(variant)]
    apache = StandaloneApache(shared_dir / "apache", conf)
    result = apache.config_test()
    assert result.returncode == 0, result.stdout + result.stderr + conf.read_text()
    assert "Syntax OK" in result.stderr


def test_check_flag_runs_apache2ctl_on_each_written_config(generate, shared_dir):
    budget = "--max-connections 100 --superuser-reserved 3 --others 0"
    result = generate(budget, f"--server-name 127.0.0.1 --out {shared_dir} --check")
    assert result.returncode == 0, result.stdout + result.stderr
    for variant in VARIANTS:
        assert f"apache2ctl -t {variant}.conf: Syntax OK" in result.stdout
        assert f"apache2ctl -t {variant}.conf with /etc/apache2: Syntax OK" in result.stdout


def test_check_catches_a_conflict_with_the_system_config(generate, shared_dir):
    """A site installed by hand declares the daemon name already: fine alone, refused
    inside the system's config (a copy of /etc/apache2 here; --check never changes it)."""
    copy = DebianCopy()
    try:
        for kind, name, text in [
            ("mods", "wsgi_express.load", module_config() + "\n"),
            ("sites", "old.conf", "WSGIDaemonProcess site threads=1\n"),
        ]:
            copy.enable(kind, name, text)
        before = copy.snapshot()
        result = generate(
            "--max-connections 100 --variant prefork --server-name 127.0.0.1",
            f"--out {shared_dir} --check --server-root {copy.root}",
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "apache2ctl -t prefork.conf: Syntax OK" in result.stdout
        assert f"apache2ctl -t prefork.conf with {copy.root} failed" in result.stderr
        assert "duplicates previous WSGI daemon definition" in result.stderr
        assert copy.snapshot() == before
    finally:
        copy.destroy()


def test_default_server_name_is_hostname_f(generate, tmp_path):
    fqdn = subprocess.run(["hostname", "-f"], capture_output=True, text=True).stdout.strip()
    result = generate(f"--max-connections 100 --variant prefork --out {tmp_path}")
    assert result.returncode == 0, result.stderr
    assert f"    ServerName {fqdn}\n" in (tmp_path / "prefork.conf").read_text()


# --- what each config carries --------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_daemon_and_vhost_directives(variant, tmp_path):
    files = local_outputs(tmp_path)
    text = files[f"{variant}.conf"]
    result = plan(variant, Machine(cores=2, memory_bytes=4 * 1024**3), Budget(100))
    options = daemon_options(text)
    assert options["processes"] == str(result.shape.processes)
    assert options["threads"] == str(result.shape.threads)
    assert options["display-name"] == "'(wsgi:site)'"
    assert options["python-home"] == f"'{sys.prefix}'"
    assert options["python-path"] == f"'{REPO_DIR / 'site'}'"
    assert options["lang"] == options["locale"] == "C.UTF-8"
    expected = "request-timeout=60 graceful-timeout=15 queue-timeout=45 socket-timeout=60"
    for key, _, value in (word.partition("=") for word in expected.split()):
        assert options[key] == value, key
    assert (options["inactivity-timeout"], options["user"]) == ("0", "www-data")
    assert "maximum-requests" not in options
    for line in [
        "WSGIRestrictEmbedded On",
        "WSGIProcessGroup site",
        "WSGIApplicationGroup %{GLOBAL}",
        f'WSGIScriptAlias / "{REPO_DIR}/site/config/wsgi.py" process-group=site '
        "application-group=%{GLOBAL}",
        f'SetEnv DJANGO_ENV_FILE "{tmp_path}/site.env"',
        f'Alias /static/ "{tmp_path}/static/"',
        f'<Directory "{tmp_path}/static">',
        "Require all granted",
    ]:
        assert line in text, line
    assert f"PERSISTENT_MODE={result.shape.mode}" in text
    # The front end can feed every daemon thread, in whole children.
    workers = directive(text, "MaxRequestWorkers")
    assert workers >= result.shape.capacity
    assert workers == directive(text, "ServerLimit") * directive(text, "ThreadsPerChild")
    assert directive(text, "MinSpareThreads") < workers
    assert directive(text, "MaxSpareThreads") == workers


def test_optional_recycling(tmp_path):
    text = local_outputs(tmp_path, maximum_requests=5000, inactivity_timeout=300)["hybrid.conf"]
    options = daemon_options(text)
    assert options["maximum-requests"] == "5000"
    assert options["inactivity-timeout"] == "300"


def test_every_option_line_is_explained(tmp_path):
    text = local_outputs(tmp_path, maximum_requests=5000)["threaded.conf"]
    explained = " ".join(line for line in text.splitlines() if line.startswith("#"))
    for key in daemon_options(text):
        assert key in explained, key


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"name": "averylongname"}, "ps shows only 17"),
        ({"name": "bad name"}, "--name"),
        ({"server_name": "example.com; Include /etc"}, "--server-name"),
        ({"venv": "relative/venv"}, "absolute path"),
        ({"static_root": "/srv/with space"}, "absolute path"),
        ({"port": 70000}, "--port"),
    ],
)
def test_inputs_the_templates_cannot_express_are_refused(tmp_path, extra, message):
    values = {"server_name": "example.com", "site_root": "/srv/site", "venv": "/srv/site/.venv"}
    with pytest.raises(render.RenderError, match=re.escape(message)):
        render.Site(**{**values, **extra})
