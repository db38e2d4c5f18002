"""The demo pages: small, dynamic, and cheap, so connection cost dominates."""

import logging

from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from catalog.models import Category, Item, Review, Tag

logger = logging.getLogger("config.database")
RELATED_COUNT = 5
REVIEW_COUNT = 5


def home(request):
    """Listing page: 2 SELECTs (categories, latest items with their category)."""
    categories = list(Category.objects.all())
    latest = list(Item.objects.select_related("category").order_by("-id")[:20])
    return render(request, "catalog/home.html", {"categories": categories, "items": latest})


def item_detail(request, item_id):
    """The benchmark page: 4 small SELECTs (item+category, tags, reviews, related items)."""
    return render(request, "catalog/item_detail.html", item_context(item_id))


def item_context(item_id):
    """The benchmark page's queries (python -m bench.prepared times them alone too)."""
    item = get_object_or_404(Item.objects.select_related("category"), pk=item_id)
    return {
        "item": item,
        "tags": list(item.tags.all()),
        "reviews": list(item.reviews.all()[:REVIEW_COUNT]),
        "related": list(
            Item.objects.filter(category_id=item.category_id)
            .exclude(pk=item.pk)
            .only("id", "name")[:RELATED_COUNT]
        ),
    }


def no_db(request):
    """The detail template with in-memory objects and no query: the benchmark ceiling."""
    category = Category(id=1, name="Ceiling", slug="ceiling")
    item = Item(
        id=1,
        category=category,
        name="No database",
        description="Rendered without a query.",
        price_cents=1999,
    )
    context = {
        "item": item,
        "tags": [Tag(id=i, name=f"tag-{i}") for i in range(1, 4)],
        "reviews": [
            Review(id=i, item=item, author=f"author-{i}", rating=4, body="In memory.")
            for i in range(1, REVIEW_COUNT + 1)
        ],
        "related": [Item(id=i, name=f"item-{i}") for i in range(2, 2 + RELATED_COUNT)],
    }
    return render(request, "catalog/item_detail.html", context)


def healthz(request):
    """One round trip to PostgreSQL: 200 ``ok``, or 503 ``database unavailable``.

    Anyone may call it, so the reason (socket path, role, authentication) goes to the log
    only; staff see the database's own message on the dashboard.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning("healthz: database unavailable: %s", reason)
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
