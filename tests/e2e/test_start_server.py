"""The plain ``mod_wsgi-express start-server`` command of docs/development.md, run as it is.

The shell block under the ``tested:`` marker runs in bash with its variables set to a
throwaway settings file (the test database), static directory and server root; the site
it starts must serve a database page, ``/healthz`` and a static file.
"""

import shutil
import subprocess

import pytest

from harness.modwsgi import DAEMON_USER, daemon_dir, get, stop_express
from harness.net import free_port
from harness.site import REPO_DIR, clean_environ
from harness.waiting import wait_until

DOC = REPO_DIR / "docs" / "development.md"
MARKER = "<!-- tested: tests/e2e/test_start_server.py"


def documented_command():
    """The shell block that follows the marker in docs/development.md."""
    after = DOC.read_text().split(MARKER, 1)[1]
    return after.split("```sh\n", 1)[1].split("\n```", 1)[0]


def test_the_documented_command_names_what_it_should():
    command = documented_command()
    assert 'mod_wsgi-express" start-server' in command
    for option in ("--python-path", "--url-alias /static", "DJANGO_ENV_FILE"):
        assert option in command


@pytest.mark.apache
def test_the_documented_start_server_command_serves_the_site(
    test_db_url, demo_data, django_db_blocker
):
    from catalog.models import Item

    with django_db_blocker.unblock():
        item_id = Item.objects.order_by("id").first().id
    work = daemon_dir("site-start-server-")
    var = work / "var"
    var.mkdir()
    shutil.chown(var, DAEMON_USER, DAEMON_USER)
    env_file = work / "site.env"
    env_file.write_text(
        f"DATABASE_URL={test_db_url}\nDJANGO_SECRET_KEY=start-server-test-{'x' * 40}\n"
        f"DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost\nDJANGO_HTTPS=0\nDJANGO_VAR_DIR={var}\n"
        "PERSISTENT_MODE=process\n"
    )
    env_file.chmod(0o644)
    port = free_port()
    variables = {
        "SITE": str(REPO_DIR),
        "ENV_FILE": str(env_file),
        "STATIC": str(var / "static"),
        "SERVER_ROOT": str(work / "server"),
        "PORT": str(port),
    }
    log = open(work / "start-server.log", "w")
    proc = subprocess.Popen(
        ["bash", "-ec", documented_command()],
        env={**clean_environ(), **variables},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, (work / "start-server.log").read_text()[-3000:]
        try:
            return get(url + "/healthz", timeout=5)[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=120, step=0.2, what="the documented server answering")
        for path in (f"/items/{item_id}/", "/healthz", "/static/admin/css/base.css"):
            status, body, _ = get(url + path)
            assert status == 200, (path, status, body[:500])
    finally:
        stop_express(proc, work / "server")
        log.close()
        shutil.rmtree(work, ignore_errors=True)
