"""Fault 9: the security settings a deployment relies on.

* ``manage.py check --deploy`` is clean (nothing at WARNING or above) under the production
  settings each generated Apache config pairs with (its ``PERSISTENT_MODE`` and daemon
  shape, read from the file's header), with the database checks run against a real server.
  (tests/test_settings.py checks the bare settings; this adds the pairing and the budget.)
* The admin password never reaches a log: the ``ensure_admin`` path of deploy.sh at every
  verbosity and log level, a real admin login through Apache, and the deployment's logs.
* The files under ``var/`` that hold secrets are mode 600 (or inside a private directory).
* The debug toolbar is unreachable with DEBUG off, over HTTP, even from an INTERNAL_IP as
  staff, while the same requests reach it with DEBUG on (the control).
"""

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
        ({"DJANGO_TEST_FAULT_VIEWS": "1"}, "faultviews.E001"),  # the test views
    ],
    ids=["process-threaded", "budget", "no-https", "fault-views"],
)
def test_check_deploy_catches_each_mistake(tmp_path, test_db_url, overrides, message):
    """The control: the same command fails when one production setting is wrong."""
    env = production_env(test_db_url, GENERATED / "threaded.conf", **overrides)
    env_file = write_env(tmp_path / "site.env", env)
    result = manage(
        "check", "--deploy", "--database", "default", "--fail-level", "WARNING",
        env_file=env_file, PYTHONPATH=f"{SITE_DIR}:{REPO_DIR}",
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


def test_var_secret_files_are_private():
    env_file = VAR_DIR / "site.env"
    assert env_file.exists(), "var/site.env is missing: run ./deploy.sh setup first"
    for path in (env_file, VAR_DIR / "admin-password"):
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{path} is mode {mode:o}, not 600"
    # Every other file under var/ that holds one of those secrets is private too (in a
    # directory only its owner can enter, or mode 600). Logs must not hold them at all.
    known = secrets_of_the_deployment()
    assert "DJANGO_SECRET_KEY" in known
    exposed = []
    for path in VAR_DIR.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 5_000_000:
            continue
        if path in (env_file, VAR_DIR / "admin-password"):
            continue
        try:
            text = path.read_bytes().decode(errors="replace")
        except OSError:
            continue
        for name, value in known.items():
            if len(value) >= 8 and value in text:
                private = not stat.S_IMODE(path.stat().st_mode) & 0o077 or any(
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
