"""The generated prefork and threaded configs, served by Debian's real Apache + mod_wsgi."""

import subprocess
import sys

import pytest

from apache_conf.apachectl import StandaloneApache
from harness.modwsgi import get
from harness.net import free_port
from harness.waiting import poll
from tests.apache_conf.conftest import REPO_DIR, write_env_file

READY_TIMEOUT = 60


def first_response(url):
    """GET ``url`` until Apache answers with something other than 503 (daemon starting)."""
    last = []

    def answered():
        try:
            last[:] = [get(url, timeout=30)]
        except OSError as exc:
            last[:] = [exc]
            return False
        return last[0][0] != 503

    if poll(answered, READY_TIMEOUT, 0.2):
        return last[0][:2]
    raise TimeoutError(f"{url} still unavailable after {READY_TIMEOUT}s: {last}")


@pytest.mark.apache
@pytest.mark.parametrize(
    "variant, processes, threads, mode",
    [("prefork", 2, 1, "process"), ("threaded", 1, 4, "pool")],
)
def test_generated_config_serves_the_site(
    variant, processes, threads, mode, generate, shared_dir, site_env, demo_data, django_db_blocker
):
    from catalog.models import Item

    with django_db_blocker.unblock():
        item = Item.objects.order_by("id").first()

    port = free_port()
    name = f"t{port}"
    env_file = write_env_file(
        shared_dir / "site.env",
        {**site_env, "DJANGO_VAR_DIR": shared_dir / "var", "PERSISTENT_MODE": mode},
    )
    static = shared_dir / "static"
    static.mkdir(mode=0o755)
    (static / "probe.txt").write_text("static ok\n")
    (static / "probe.txt").chmod(0o644)
    (shared_dir / "apache" / "logs").mkdir(parents=True)  # apache2ctl -t checks the vhost's

    sizing = f"--processes {processes}" if variant == "prefork" else f"--threads {threads}"
    result = generate(
        f"--variant {variant} {sizing} --database-url {site_env['DATABASE_URL']}",
        f"--server-name 127.0.0.1 --port {port} --name {name} --venv {sys.prefix}",
        f"--site-root {REPO_DIR} --env-file {env_file} --static-root {static}",
        f"--log-dir {shared_dir}/apache/logs --out {shared_dir}/conf --check",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"apache2ctl -t {variant}.conf: Syntax OK" in result.stdout
    conf = shared_dir / "conf" / f"{variant}.conf"
    assert f"processes={processes} threads={threads} \\" in conf.read_text()

    apache = StandaloneApache(shared_dir / "apache", conf, port=port)
    apache.start()
    try:
        status, body = first_response(apache.url + "/healthz")
        assert (status, body) == (200, "ok\n"), apache.logs()
        status, body, _ = get(f"{apache.url}/items/{item.id}/")
        assert status == 200, (status, body[:500], apache.logs())
        assert item.name in body
        status, body, headers = get(apache.url + "/static/probe.txt")
        assert (status, body) == (200, "static ok\n")
        assert get(apache.url + "/static/")[0] == 403  # Options -Indexes

        daemons = apache.processes(f"(wsgi:{name})")
        assert len(daemons) == processes, (daemons, apache.logs())
        assert {user for _, user, _ in daemons} == {"www-data"}
    finally:
        apache.stop()
    assert apache.processes(f"(wsgi:{name})") == []
    errors = apache.error_log.read_text()
    assert "AH10159" not in errors and "AH00484" not in errors, errors
    stray = subprocess.run(["pgrep", "-f", str(apache.conf)], capture_output=True, text=True)
    assert stray.stdout == "", "Apache processes left after stop"
