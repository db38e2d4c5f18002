"""``apache_conf install`` / ``uninstall`` against a copy of Debian's own /etc/apache2.

The copy (tests/apache_conf/debian_copy.py) runs the real Debian Apache through
``apache2ctl`` with its own run/log directories and free ports; the machine's Apache
is never touched.
"""

import os
import re
import socket
import subprocess
import sys

import pytest

from tests.apache_conf.conftest import REPO_DIR, run_generator
from tests.apache_conf.debian_copy import Client, DebianCopy

SERVER_NAME = "site.test"
STAFF = ("staff", "staff-password-1")


@pytest.fixture
def debian():
    copy = DebianCopy()
    try:
        yield copy
    finally:
        copy.destroy()


@pytest.fixture
def staff_user(demo_data, django_db_blocker):
    from django.contrib.auth.models import User

    with django_db_blocker.unblock():
        user, _ = User.objects.get_or_create(username=STAFF[0])
        user.is_staff = True
        user.set_password(STAFF[1])
        user.save()
    return STAFF


def first_item(django_db_blocker):
    from catalog.models import Item

    with django_db_blocker.unblock():
        return Item.objects.order_by("id").first()


def install(debian, db_url, *args, action="install", name=None):
    """``python -m apache_conf ACTION`` for the copy (no Django settings needed)."""
    return run_generator(
        action,
        f"--server-root {debian.root} --state-dir {debian.state_dir}",
        *(
            ()
            if action == "uninstall"
            else (
                f"--server-name {SERVER_NAME} --port {debian.port} --tls-port {debian.tls_port}",
                f"--var-dir {debian.var_dir} --log-dir {debian.log_dir} --venv {sys.prefix}",
                f"--site-root {REPO_DIR} --database-url {db_url}",
                f"--acme-webroot {debian.acme_webroot}",
            )
        ),
        *(("--name", name) if name else ()),
        *args,
        module="apache_conf",
    )


def https_flags(https, debian):
    if https == "tls":
        cert, key = debian.self_signed(SERVER_NAME)
        return f"--tls-cert {cert} --tls-key {key}"
    return {"proxy": "--behind-tls-proxy", "http": "--http-only"}[https]


def client_for(https, debian):
    """A client over the scheme the install chose, and one that does not use it."""
    if https == "tls":
        return Client("https", debian.tls_port, SERVER_NAME), Client(
            "http", debian.port, SERVER_NAME
        )
    if https == "proxy":
        proxied = Client("http", debian.port, SERVER_NAME, {"X-Forwarded-Proto": "https"})
        return proxied, Client("http", debian.port, SERVER_NAME)
    return Client("http", debian.port, SERVER_NAME), None


def workers(client):
    """Apache's front-end worker slots from mod_status (Debian enables it for local hosts)."""
    status, body, _ = client.get("/server-status?auto")
    assert status == 200, body[:300]
    fields = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
    return int(fields["BusyWorkers"]) + int(fields["IdleWorkers"])


@pytest.mark.apache
@pytest.mark.parametrize("https", ["tls", "proxy", "http"])
def test_install_prefork_then_threaded_then_uninstall(
    https, debian, test_db_url, staff_user, django_db_blocker
):
    item = first_item(django_db_blocker)
    name = f"i{debian.port}"
    before = debian.snapshot()
    flags = https_flags(https, debian)

    # prefork, 2 processes
    result = install(debian, test_db_url, f"--variant prefork --processes 2 {flags}", name=name)
    assert result.returncode == 0, result.stdout + result.stderr + debian.logs()
    assert "apache2ctl -t: Syntax OK" in result.stdout
    assert re.search(r"self-check: GET \S+/healthz .*-> 200 ok", result.stdout), result.stdout
    assert len(debian.daemons(name)) == 2
    env_file = debian.var_dir / "production.env"
    st = env_file.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, 0)
    assert st.st_gid == __import__("grp").getgrnam("www-data").gr_gid
    env = env_file.read_text()
    assert f"DJANGO_ALLOWED_HOSTS={SERVER_NAME},localhost,127.0.0.1,[::1]\n" in env
    assert "PERSISTENT_MODE=process\n" in env
    expected_https = {"tls": ("1", "0"), "proxy": ("1", "1"), "http": ("0", "0")}[https]
    assert f"DJANGO_HTTPS={expected_https[0]}\n" in env
    assert f"DJANGO_BEHIND_TLS_PROXY={expected_https[1]}\n" in env
    secret = re.search(r"^DJANGO_SECRET_KEY=(\S+)$", env, re.M).group(1)

    client, plain = client_for(https, debian)
    prefork_workers = workers(client)
    for path in ("/", f"/items/{item.id}/", "/healthz", "/static/admin/css/base.css"):
        status, body, _ = client.get(path)
        assert status == 200, (path, status, body[:300], debian.logs())
    assert item.name in client.get(f"/items/{item.id}/")[1]
    if plain is not None:  # HTTPS on: plain requests are redirected to https://
        status, _, headers = plain.get("/healthz")
        assert status == 301 and headers["Location"].startswith("https://"), (status, headers)
    # certbot --webroot's challenge files: over plain HTTP, never redirected.
    acme = Client("http", debian.port, SERVER_NAME).get("/.well-known/acme-challenge/token-1")
    assert acme[:2] == (200, "token-1.key\n"), acme[:2]

    # Idempotent: the same install again changes nothing and keeps the server running.
    pid = debian.server.running_pid()
    again = install(debian, test_db_url, f"--variant prefork --processes 2 {flags}", name=name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no change" in again.stdout and debian.server.running_pid() == pid
    assert re.search(r"^DJANGO_SECRET_KEY=(\S+)$", env_file.read_text(), re.M).group(1) == secret

    # A dry run of the change shows it as a diff and changes nothing.
    installed = debian.snapshot()
    dry = install(
        debian, test_db_url, f"--variant threaded --threads 15 {flags} --dry-run", name=name
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    for line in ("-    ThreadLimit             10", "+    ThreadLimit             17",
                 "-PERSISTENT_MODE=process", "+PERSISTENT_MODE=pool"):  # fmt: skip
        assert f"    | {line}\n" in dry.stdout, dry.stdout
    assert "SECRET_KEY" not in dry.stdout and debian.snapshot() == installed

    # threaded, 15 threads: ThreadLimit 10 -> 17 needs a full restart to take effect.
    result = install(debian, test_db_url, f"--variant threaded --threads 15 {flags}", name=name)
    assert result.returncode == 0, result.stdout + result.stderr + debian.logs()
    conf = (debian.root / "sites-available" / f"{name}.conf").read_text()
    server_limit = int(re.search(r"^\s*ServerLimit\s+(\d+)$", conf, re.M).group(1))
    thread_limit = int(re.search(r"^\s*ThreadLimit\s+(\d+)$", conf, re.M).group(1))
    assert thread_limit == 17 and server_limit == 2
    assert workers(client) == server_limit * thread_limit != prefork_workers
    assert not re.search(r"AH00506|AH00508|AH00514", debian.error_log()), debian.error_log()
    assert len(debian.daemons(name)) == 1
    assert "PERSISTENT_MODE=pool\n" in env_file.read_text()

    # Staff login to the dashboard over the chosen scheme.
    location = client.login(*staff_user, next_path="/dashboard/")
    assert location == "/dashboard/"
    status, body, _ = client.get("/dashboard/")
    assert status == 200 and "<title>Dashboard" in body, body[:500]

    installed = debian.snapshot()
    dry = install(debian, test_db_url, "--dry-run", action="uninstall")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would restore {debian.root}/sites-enabled/000-default.conf (link)" in dry.stdout
    assert debian.snapshot() == installed
    result = install(debian, test_db_url, action="uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    assert debian.snapshot() == before
    assert debian.daemons(name) == []
    assert not debian.state_dir.exists() or not any(debian.state_dir.iterdir())


def test_refuses_debian_mod_wsgi_with_the_fix(debian, test_db_url):
    debian.enable(
        "mods", "wsgi.load", "LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so\n"
    )
    before = debian.snapshot()
    result = install(debian, test_db_url, "--variant prefork --http-only")
    assert result.returncode == 2
    assert f"run 'APACHE_CONFDIR={debian.root} a2dismod wsgi'" in result.stderr
    assert debian.snapshot() == before and not debian.state_dir.joinpath("journal.json").exists()


def test_https_is_on_unless_told(debian, test_db_url):
    before = debian.snapshot()
    result = install(debian, test_db_url, "--variant prefork")
    assert result.returncode == 2
    assert "--tls-cert FILE --tls-key FILE" in result.stderr and "--http-only" in result.stderr
    result = install(debian, test_db_url, "--variant prefork --http-only --behind-tls-proxy")
    assert result.returncode == 2 and "choose one of" in result.stderr
    assert debian.snapshot() == before


def test_dry_run_prints_every_change_and_makes_none(debian, test_db_url):
    before = debian.snapshot()
    cert, key = debian.self_signed(SERVER_NAME)
    result = install(
        debian, test_db_url, f"--variant prefork --tls-cert {cert} --tls-key {key} --dry-run"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        f"would write {debian.root}/mods-available/wsgi_express.load",
        f"would link {debian.root}/mods-enabled/ssl.load -> ../mods-available/ssl.load",
        f"would link {debian.root}/sites-enabled/site.conf -> ../sites-available/site.conf",
        f"would remove {debian.root}/sites-enabled/000-default.conf",
        f"would write {debian.var_dir}/production.env (mode 0640)",
        "    | +DJANGO_SECRET_KEY=********",
        "    | +DJANGO_HTTPS=1",
        "    | +WSGIDaemonProcess site \\",
        "    | +LoadModule wsgi_module",
        "would run: collectstatic, apache2ctl -t, a full restart, GET /healthz",
    ):
        assert expected in out, out
    assert debian.snapshot() == before
    assert (
        not (debian.var_dir / "production.env").exists()
        and not debian.state_dir.joinpath("journal.json").exists()
    )


def test_failed_configtest_undoes_the_run(debian, test_db_url):
    """A site already declaring the daemon name: apache2ctl -t fails, nothing stays changed."""
    debian.enable("sites", "other.conf", "WSGIDaemonProcess site threads=1\n")
    before = debian.snapshot()
    result = install(debian, test_db_url, "--variant prefork --http-only")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "apache2ctl -t failed" in result.stderr and "undone" in result.stderr
    assert debian.snapshot() == before
    assert not (debian.var_dir / "production.env").exists()
    assert debian.server.running_pid() is None


@pytest.mark.apache
def test_generated_readme_steps_work_as_written(debian, test_db_url, demo_data):
    """Every command of the README's install section, run as written from the repository
    root (DATABASE_URL exported, as the README says), then uninstall."""
    before = debian.snapshot()
    cert, key = debian.self_signed(SERVER_NAME)
    out_dir = debian.base / "generated"
    # trust authentication ignores the password: it is here to show it never leaks.
    url = test_db_url.replace("postgres@", "postgres:pw-must-not-leak@")
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": url, "HOME": "/root"}
    result = run_generator(
        f"--server-name {SERVER_NAME} --port {debian.port} --tls-port {debian.tls_port}",
        f"--tls-cert {cert} --tls-key {key} --server-root {debian.root}",
        f"--state-dir {debian.state_dir} --var-dir {debian.var_dir} --log-dir {debian.log_dir}",
        f"--database-url {url} --out {out_dir}",
        module="apache_conf",
    )
    assert result.returncode == 0, result.stderr
    readme = (out_dir / "README").read_text()
    section = readme[readme.index("Install one of them") : readme.index("\nHTTPS:")]
    commands = [line.strip() for line in section.splitlines() if line.startswith("      ")]
    assert len(commands) == 6, commands
    assert "pw-must-not-leak" not in readme + (out_dir / "prefork.conf").read_text()
    outputs = []
    for command in commands:
        done = subprocess.run(
            command, shell=True, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr, debian.logs())
        outputs.append(done.stdout)
    assert "self-check" in outputs[2] and "-> 200 ok" in outputs[2]
    assert "(wsgi:site)" in outputs[3]
    assert outputs[4] == "ok\n"
    assert debian.snapshot() == before


def test_uninstall_without_an_install_changes_nothing(debian, test_db_url):
    before = debian.snapshot()
    result = install(debian, test_db_url, action="uninstall")
    assert result.returncode == 0, result.stderr
    assert f"nothing to uninstall: no journal in {debian.state_dir}" in result.stdout
    assert debian.snapshot() == before


@pytest.mark.apache  # deploy.sh refuses a Python the daemon user cannot run (--no-apache venvs)
def test_manage_py_and_deploy_sh_run_the_same_install(debian, test_db_url):
    """``manage.py apache_conf install`` and ``./deploy.sh install-apache`` (dry runs)."""
    common = (
        f"--variant hybrid --processes 3 --threads 2 --http-only --server-name {SERVER_NAME}"
        f" --server-root {debian.root} --state-dir {debian.state_dir} --var-dir {debian.var_dir}"
        f" --database-url {test_db_url} --dry-run"
    )
    before = debian.snapshot()
    result = run_generator("install", common)  # manage.py apache_conf install ...
    assert result.returncode == 0, result.stdout + result.stderr
    assert "    | +    processes=3 threads=2 \\\n" in result.stdout  # the config, as a diff
    assert f"would write {debian.root}/sites-available/site.conf" in result.stdout
    env = {**os.environ, "VENV": sys.prefix}
    deploy = subprocess.run(
        [str(REPO_DIR / "deploy.sh"), "install-apache", *common.split()],
        cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr

    def changes(out):  # the config's "Generated by" line names each one's own command
        return [line for line in out.splitlines() if "# Generated by `" not in line]

    assert changes(deploy.stdout) == changes(result.stdout)
    assert debian.snapshot() == before


def test_a_server_that_does_not_start_undoes_the_run(debian, test_db_url):
    """Its port is taken: apache2ctl -t passes, the start fails; nothing stays changed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", debian.port))
        taken.listen()
        before = debian.snapshot()
        result = install(debian, test_db_url, "--variant prefork --http-only")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "apache2ctl -t: Syntax OK" in result.stdout
    assert "this run's changes were undone" in result.stderr, result.stderr
    assert debian.snapshot() == before
    assert not (debian.var_dir / "production.env").exists()


def test_a_value_the_env_file_cannot_hold_is_refused_and_nothing_stays(debian):
    before = debian.snapshot()
    result = run_generator(
        "install --variant prefork --http-only --max-connections 100",
        f"--server-root {debian.root} --state-dir {debian.state_dir} --var-dir {debian.var_dir}",
        "--database-url 'postgres://site:a b#c@127.0.0.1:1/site'",
        module="apache_conf",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "percent-encode it in the URL" in result.stderr
    assert f"write {debian.root}/sites-available/site.conf" in result.stdout  # then undone
    assert debian.snapshot() == before
    assert not debian.state_dir.joinpath("journal.json").exists()
