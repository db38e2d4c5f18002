"""Point 11: the django-debug-toolbar panel, in a DEBUG site process (fresh interpreter)."""

import json
import re
from pathlib import Path

from harness.site import run_python

SITE_DIR = Path(__file__).resolve().parents[2] / "site"

SCRIPT = r"""
import json, re, wsgiref.util
import django
django.setup()
from django.core.handlers.wsgi import WSGIHandler

handler = WSGIHandler()

def get(path, query=""):
    environ = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
               "REMOTE_ADDR": "127.0.0.1"}
    wsgiref.util.setup_testing_defaults(environ)
    status = []
    result = handler(environ, lambda s, h, e=None: status.append(s))
    try:
        return int(status[0].split()[0]), b"".join(result).decode()
    finally:
        result.close()

pages = []
for _ in range(2):
    status, body = get("/")
    request_id = re.search(r'data-request-id="([0-9a-f]+)"', body).group(1)
    _, panel = get("/__debug__/render_panel/",
                   f"request_id={request_id}&panel_id=PersistentConnectionPanel")
    pages.append({"status": status, "page": body, "panel": json.loads(panel)["content"]})
print(json.dumps(pages))
"""


def test_toolbar_panel_shows_this_requests_connection(test_db_url, demo_data):
    env = {
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "panel-test-" + "x" * 40,
        "DATABASE_URL": test_db_url,
        "PERSISTENT_MODE": "process",
    }
    result = run_python(["-c", SCRIPT], env)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = json.loads(result.stdout.splitlines()[-1])
    assert first["status"] == second["status"] == 200
    assert "Persistent connections" in first["page"]  # the panel is in the toolbar
    assert "new (opened by this request)" in first["panel"]
    assert "reused" in second["panel"] and "new (opened" not in second["panel"]
    pids = [re.search(r"Backend pid</th><td>(\d+)", p["panel"]).group(1) for p in (first, second)]
    assert pids[0] == pids[1]
    assert re.search(r"Uses \(requests served\)</th><td>2<", second["panel"])
    # The process's statistics, including the connection list.
    assert re.search(r"<th>reuses</th><td>1</td>", second["panel"])
    assert re.search(r"<th>mode</th><td>process</td>", second["panel"])
    assert f"<td>{pids[1]}</td>" in second["panel"].split("Connections of this process")[1]
