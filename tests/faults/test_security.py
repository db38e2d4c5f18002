"""Fault 9: the security settings a deployment relies on.

* ``manage.py check --deploy`` is clean (nothing at WARNING or above) under the production
  settings each generated Apache config pairs with (its ``PERSISTENT_MODE`` and daemon
  shape, read from the file's header), with the database checks run against a real server.
  (tests/test_settings.py checks the bare settings; this adds the pairing and the budget.)
* The admin password never reaches a log: the ``ensure_admin`` path of deploy.sh at every
  verbosity and log level, a real admin login through Apache, and the deployment's logs.
* ``var/site.env`` is root's and readable by the daemon group only (0640), without the
  local run's ``DJANGO_HTTPS=0``; other files holding secrets are private; nothing under
  ``var/`` is writable by every account; ``var/log`` and ``var/metrics`` are private.
* The debug toolbar is unreachable with DEBUG off, over HTTP, even from an INTERNAL_IP as
  staff, while the same requests reach it with DEBUG on (the control); plain HTTP with
  DEBUG off logs one warning per daemon.
* Production settings never load the fault-test views; HTTPS is on by default and the
  HSTS scope (subdomains, preload) is opt-in; docs/security.md names only real tests.
(test_deploy.py runs deploy.sh itself.)
"""

import grp
import os
import re
import secrets
import stat
from pathlib import Path

import pytest
from django.test import Client

from harness.load import request
from harness.modwsgi import get
from harness.site import run_manage
from tests.faults import harness

REPO_DIR = Path(__file__).resolve().parents[2]
SITE_DIR = REPO_DIR / "site"
GENERATED = REPO_DIR / "apache_conf" / "generated"
VAR_DIR = REPO_DIR / "var"
FAULT_SETTINGS = "tests.faults.faultviews.settings"


def manage(*args, env_file=None, **env):
    """``python site/manage.py ARGS`` in a fresh process, settings from ``env_file`` only."""
    return run_manage(args, {"DJANGO_ENV_FILE": str(env_file or "/dev/null"), **env})


def write_env(path, values):
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)
    return path


# -- check --deploy under the generated configs' settings ------------------------------
def pairing(conf):
    """(PERSISTENT_MODE, processes, threads) that a generated config's header names."""
    text = conf.read_text()
    mode = re.search(r"Pairs with persistent_backend PERSISTENT_MODE=(\w+)", text).group(1)
    shape = re.search(r"Daemons: (\d+) process(?:es)? x (\d+) threads?", text)
    return mode, int(shape.group(1)), int(shape.group(2))


def production_env(test_db_url, conf, **overrides):
    mode, processes, threads = pairing(conf)
    return {
        "DATABASE_URL": test_db_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "example.com",
        "PERSISTENT_MODE": mode,
        "PERSISTENT_PROCESSES": processes,
        "PERSISTENT_THREADS": threads,
        **overrides,
    }


@pytest.mark.parametrize("variant", ["prefork", "threaded", "hybrid"])
def test_check_deploy_clean_with_the_generated_configs_settings(tmp_path, test_db_url, variant):
    conf = GENERATED / f"{variant}.conf"
    env_file = write_env(tmp_path / "site.env", production_env(test_db_url, conf))
    result = manage(
        "check", "--deploy", "--database", "default", "--fail-level", "WARNING", env_file=env_file
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"PERSISTENT_MODE": "process"}, "persistent_backend.E002"),  # threaded, process mode
        ({"PERSISTENT_PROCESSES": 200}, "persistent_backend.W002"),  # over the budget
        ({"DJANGO_HTTPS": "0"}, "security.W008"),  # no redirect to HTTPS
        ({"DJANGO_HSTS_SECONDS": "0"}, "security.W004"),  # no HSTS
        ({"DJANGO_SETTINGS_MODULE": FAULT_SETTINGS}, "faultviews.E001"),  # the test views
    ],
    ids=["process-threaded", "budget", "no-https", "no-hsts", "fault-views"],
)
def test_check_deploy_catches_each_mistake(tmp_path, test_db_url, overrides, message):
    """The control: the same command fails when one production setting is wrong."""
    process_env = {k: overrides.pop(k) for k in list(overrides) if k == "DJANGO_SETTINGS_MODULE"}
    env = production_env(test_db_url, GENERATED / "threaded.conf", **overrides)
    env_file = write_env(tmp_path / "site.env", env)
    result = manage(
        "check", "--deploy", "--database", "default", "--fail-level", "WARNING",
        env_file=env_file, PYTHONPATH=f"{SITE_DIR}:{REPO_DIR}", **process_env,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert message in result.stdout + result.stderr, result.stdout + result.stderr


# -- the admin password never reaches a log --------------------------------------------
def test_ensure_admin_never_prints_the_password(tmp_path, test_db_url, django_user_model):
    """deploy.sh's path: ``ADMIN_PASSWORD=... manage.py ensure_admin --username U``, here
    with its output captured (deploy.sh sends it to /dev/null), at the noisiest settings."""
    env_file = write_env(tmp_path / "site.env", {"DATABASE_URL": test_db_url})
    password = "pw-" + secrets.token_hex(12)
    runs = []
    for debug in ("0", "1"):
        for verbosity in ("1", "3"):
            runs.append(
                manage(
                    "ensure_admin",
                    "--username",
                    "faults-admin",
                    "-v",
                    verbosity,
                    env_file=env_file,
                    ADMIN_PASSWORD=password,
                    DJANGO_DEBUG=debug,
                    DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                    DJANGO_LOG_LEVEL="DEBUG",
                    PERSISTENT_LOG_LEVEL="DEBUG",
                )  # fmt: skip
            )
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert password not in result.stdout + result.stderr
    assert "created staff superuser 'faults-admin'" in runs[0].stdout
    assert "kept staff superuser 'faults-admin'" in runs[-1].stdout
    user = django_user_model.objects.get(username="faults-admin")
    assert user.is_staff and user.is_superuser and user.check_password(password)
    assert password not in user.password  # stored hashed
    # The password is read from the environment only, never from the command line.
    refused = manage(
        "ensure_admin", "--username", "faults-admin", "--password", password,
        env_file=env_file, DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
    )  # fmt: skip
    assert refused.returncode != 0 and "unrecognized arguments: --password" in refused.stderr


def test_admin_login_leaves_no_password_in_the_server_logs(live_site, django_user_model):
    password = "pw-" + secrets.token_hex(12)
    django_user_model.objects.create_user("faults-login", password=password, is_staff=True)
    server = live_site(processes=1, threads=2, DJANGO_LOG_LEVEL="DEBUG")
    status, page, headers = get(server.url + "/admin/login/")
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    cookie = headers["Set-Cookie"].split(";")[0]
    for attempt in (password, password + "-wrong"):
        result = request(
            server.url,
            "/admin/login/",
            method="POST",
            body=f"csrfmiddlewaretoken={token}&username=faults-login&password={attempt}",
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert result.status in (200, 302), result.text[:300]
        assert attempt not in result.text
    logs = harness.error_log(server) + server.logs()
    assert password not in logs


def secrets_of_the_deployment():
    """The secrets deploy.sh wrote: every value in var/site.env that is a secret, the
    database password in DATABASE_URL, and var/admin-password."""
    found = {}
    env_file = VAR_DIR / "site.env"
    for line in env_file.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in ("DJANGO_SECRET_KEY", "DASHBOARD_METRICS_TOKEN") and value:
            found[key] = value
        if key == "DATABASE_URL":
            password = re.match(r"postgres(?:ql)?://[^:/@]+:([^@]+)@", value)
            if password:
                found["database password"] = password.group(1)
    admin = VAR_DIR / "admin-password"
    if admin.exists():
        found["admin password"] = admin.read_text().strip()
    return found


def daemon_gid():
    return grp.getgrnam(os.environ.get("DAEMON_USER", "www-data")).gr_gid


def test_var_secret_files_are_private():
    """site.env: root's, readable by the daemon group only (0640: the daemons can neither
    change it nor plant settings in it); admin-password: 0600; var/ holds nothing that
    every account may write, var/log nothing every account may list or read."""
    env_file = VAR_DIR / "site.env"
    assert env_file.exists(), "var/site.env is missing: run ./deploy.sh setup first"
    info = env_file.stat()
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (0, daemon_gid()), (info.st_uid, info.st_gid)
        assert stat.S_IMODE(info.st_mode) == 0o640, f"site.env is mode {info.st_mode:o}"
    else:
        assert stat.S_IMODE(info.st_mode) == 0o600, f"site.env is mode {info.st_mode:o}"
    assert "DJANGO_HTTPS=" not in env_file.read_text(), "the local run's HTTPS=0 is in site.env"
    admin = VAR_DIR / "admin-password"
    if admin.exists():
        assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    writable = [
        str(path.relative_to(REPO_DIR))
        for path in [VAR_DIR, *VAR_DIR.rglob("*")]
        if not path.is_symlink()
        and (path.is_file() or path.is_dir())
        and path.stat().st_mode & stat.S_IWOTH
    ]
    assert not writable, f"writable by every account: {writable}"
    log_dir = VAR_DIR / "log"
    assert not log_dir.stat().st_mode & stat.S_IROTH, "var/log can be listed by anyone"
    readable = [
        p.name for p in log_dir.iterdir() if p.stat().st_mode & (stat.S_IROTH | stat.S_IRGRP)
    ]
    assert not readable, f"logs readable by others: {readable}"
    metrics = VAR_DIR / "metrics"
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o700, "var/metrics is not private"
    # Every other file under var/ that holds one of those secrets is private too (no access
    # for other accounts; at most the daemon group may read). Logs must not hold them.
    known = secrets_of_the_deployment()
    assert "DJANGO_SECRET_KEY" in known
    exposed = []
    for path in VAR_DIR.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 5_000_000:
            continue
        if path in (env_file, admin):
            continue
        try:
            text = path.read_bytes().decode(errors="replace")
        except OSError:
            continue
        for name, value in known.items():
            if len(value) >= 8 and value in text:
                private = not stat.S_IMODE(path.stat().st_mode) & 0o007 or any(
                    not stat.S_IMODE(parent.stat().st_mode) & 0o077
                    for parent in path.parents
                    if VAR_DIR in parent.parents or parent == VAR_DIR
                )
                in_log = path.suffix == ".log" or "log" in path.parts
                if in_log or not private:
                    exposed.append(f"{path.relative_to(REPO_DIR)}: {name}")
    assert not exposed, exposed


def test_admin_password_not_in_deployment_logs():
    admin = VAR_DIR / "admin-password"
    password = admin.read_text().strip() if admin.exists() else os.environ.get("ADMIN_PASSWORD")
    assert password, "no admin password: run ./deploy.sh setup first"
    for log in [*(VAR_DIR / "log").glob("*"), VAR_DIR / "apache" / "error_log"]:
        if log.is_file():
            assert password not in log.read_text(errors="replace"), log


# -- the debug toolbar -------------------------------------------------------------------
TOOLBAR_PATHS = ["/__debug__/render_panel/", "/__debug__/history_sidebar/", "/__debug__/"]


def test_debug_toolbar_unreachable_with_debug_off(live_site, django_user_model):
    staff = django_user_model.objects.create_user("faults-toolbar", is_staff=True)
    client = Client()
    client.force_login(staff)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    off = live_site(processes=1, threads=2)
    on = live_site(processes=1, threads=2, DJANGO_DEBUG="1")
    for server, debug in ((off, False), (on, True)):
        home_status, home, _ = get(server.url + "/", headers=cookie)
        assert home_status == 200
        assert ('id="djDebug"' in home) is debug, f"DEBUG={debug}: toolbar markup"
        for path in TOOLBAR_PATHS[:1]:
            status, body, _ = get(server.url + path + "?request_id=x&panel_id=SQLPanel")
            if debug:
                assert status != 404, (path, status)
            else:
                assert status == 404, (path, status, body[:300])
    for path in TOOLBAR_PATHS:
        status, body, _ = get(off.url + path, headers=cookie)
        assert status == 404, (path, status)
        assert "djdt" not in body.lower() and "debug_toolbar" not in body
    # Both run over plain HTTP (DJANGO_HTTPS=0): only the production-like one (DEBUG off)
    # warns, once per daemon process however many requests it serves.
    for _ in range(5):
        assert get(off.url + "/nodb/")[0] == 200
    warned = re.findall(r"\[(\d+)\] DJANGO_HTTPS is off with DEBUG off", harness.error_log(off))
    assert warned and len(warned) == len(set(warned)), warned
    assert "DJANGO_HTTPS is off" not in harness.error_log(on)


# -- settings: what production settings can never load, and what is opt-in ---------------
PROBE_FAULTS = (
    "import sys; from django.conf import settings; from django.urls import resolve, Resolver404\n"
    "try:\n    resolve('/_faults/pid/'); print('mounted')\n"
    "except Resolver404:\n    print('absent')\n"
    "print(any('faultviews' in a for a in settings.INSTALLED_APPS),"
    " any(m.startswith('tests') for m in sys.modules))"
)


def test_production_settings_never_load_the_fault_views(tmp_path, test_db_url):
    """Whatever the environment says (the old switch included): only the fault suite's
    own settings module mounts them."""
    env_file = write_env(
        tmp_path / "site.env",
        {**production_env(test_db_url, GENERATED / "threaded.conf"), "DJANGO_TEST_FAULT_VIEWS": 1},
    )
    shell = ("shell", "-v", "0", "-c", PROBE_FAULTS)
    production = manage(*shell, env_file=env_file, PYTHONPATH=f"{SITE_DIR}:{REPO_DIR}")
    assert production.returncode == 0, production.stderr
    assert production.stdout.split() == ["absent", "False", "False"], production.stdout
    faults = manage(
        *shell, env_file=env_file, PYTHONPATH=f"{SITE_DIR}:{REPO_DIR}",
        DJANGO_SETTINGS_MODULE=FAULT_SETTINGS,
    )  # fmt: skip
    assert faults.returncode == 0, faults.stderr
    assert faults.stdout.split() == ["mounted", "True", "True"], faults.stdout


PROBE_HSTS = (
    "from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS,"
    " s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE)"
)


def test_production_defaults_to_https_and_hsts_scope_is_opt_in(tmp_path, test_db_url):
    env = production_env(test_db_url, GENERATED / "threaded.conf")
    default = manage(
        "shell", "-v", "0", "-c", PROBE_HSTS, env_file=write_env(tmp_path / "a.env", env)
    )
    assert default.stdout.split() == ["31536000", "False", "False", "True"], default.stderr
    asked = {**env, "DJANGO_HSTS_INCLUDE_SUBDOMAINS": 1, "DJANGO_HSTS_PRELOAD": 1}
    opted = manage(
        "shell", "-v", "0", "-c", PROBE_HSTS, env_file=write_env(tmp_path / "b.env", asked)
    )
    assert opted.stdout.split() == ["31536000", "True", "True", "True"], opted.stderr


def test_security_doc_names_existing_tests():
    """Each line of docs/security.md's threat model is tied to a test that exists."""
    doc = (REPO_DIR / "docs" / "security.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", doc))
    assert len(named) >= 20, named
    missing = [
        f"{path}::{name}"
        for path, name in sorted(named)
        if not re.search(rf"^def {name}\(", (REPO_DIR / path).read_text(), re.MULTILINE)
    ]
    assert not missing, missing
    table = [line for line in doc.splitlines() if line.startswith("| ") and "---" not in line]
    assert all("tests/" in line for line in table[1:]), "a threat-model line without a test"
