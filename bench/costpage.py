"""The page ``bench.request_cost`` drives: 3 small SELECTs, no template (ROOT_URLCONF).

Loaded only inside its worker processes, after Django is set up with the site's settings.
"""

from django.http import HttpResponse
from django.urls import path

from catalog.models import Item, Review, Tag


def three_selects(request, item_id):
    item = Item.objects.only("id", "name").get(pk=item_id)
    tags = list(Tag.objects.filter(items=item_id).values_list("name", flat=True))
    reviews = list(Review.objects.filter(item_id=item_id).values_list("rating", flat=True)[:5])
    return HttpResponse(f"{item.name}: {len(tags)} tags, {len(reviews)} reviews\n")


urlpatterns = [path("cost/<int:item_id>/", three_selects)]
