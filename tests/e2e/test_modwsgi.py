"""End to end: the site served by real mod_wsgi-express daemon processes."""

import subprocess

from harness.modwsgi import get


def test_prefork_daemons_serve_every_page(live_site, django_db_blocker):
    from catalog.models import Item

    with django_db_blocker.unblock():
        item_id = Item.objects.order_by("id").first().id
    server = live_site(processes=2, threads=1)
    for path in ["/", f"/items/{item_id}/", "/nodb/", "/healthz", "/admin/login/"]:
        status, body, _ = get(server.url + path)
        assert status == 200, (path, status, body[:500], server.logs())
    assert get(server.url + "/items/999999999/")[0] == 404
    pids = server.daemon_pids()
    assert len(pids) == 2, pids
    users = subprocess.run(
        ["ps", "-o", "user=", "-p", ",".join(map(str, pids))], capture_output=True, text=True
    ).stdout.split()
    assert set(users) <= {"www-data", subprocess.getoutput("id -un")}
