"""The demo pages against the real test database: status, content, query counts."""

import pytest
from django.db import connections

from catalog.models import Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(demo_data):
    return Item.objects.select_related("category").order_by("id").first()


def test_home_lists_items_in_two_queries(client, item, django_assert_num_queries):
    with django_assert_num_queries(2):
        response = client.get("/")
    assert response.status_code == 200
    assert "Latest items" in response.text
    assert f"/items/{Item.objects.order_by('-id').first().id}/" in response.text


def test_item_detail_shows_item_in_four_queries(client, item, django_assert_num_queries):
    with django_assert_num_queries(4):
        response = client.get(f"/items/{item.id}/")
    assert response.status_code == 200
    assert item.name in response.text
    assert item.category.name in response.text
    assert response.text.count('class="tag"') == 3


def test_nodb_renders_detail_template_without_queries(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/nodb/")
    assert response.status_code == 200
    assert "No database" in response.text
    assert "Related" in response.text


@pytest.mark.parametrize("path", ["/items/999999999/", "/items/0/", "/nope/", "/items/abc/"])
def test_unknown_pages_are_404_not_500(client, demo_data, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "Traceback" not in response.text


def test_healthz_ok(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"


def test_admin_login_page(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert 'name="password"' in response.text


def test_admin_requires_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_healthz_and_pages_say_503_while_database_is_down(client, controllable_cluster, demo_data):
    item_id = Item.objects.order_by("id").first().id
    connections.close_all()
    controllable_cluster.stop()
    try:
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.text
        assert body == "database unavailable\n", body  # anyone may ask: no detail
        page = client.get(f"/items/{item_id}/")
        assert page.status_code == 503
        assert "database is unavailable" in page.text
        assert page["Retry-After"] == "5"
    finally:
        connections.close_all()
        controllable_cluster.start()
        controllable_cluster.wait_ready()
    assert client.get("/healthz").status_code == 200
    assert client.get(f"/items/{item_id}/").status_code == 200
