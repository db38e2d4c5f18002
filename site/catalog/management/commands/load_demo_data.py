"""Load a few thousand deterministic demo rows; running it again changes nothing."""

import random

from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.models import Category, Item, Review, Tag

CATEGORIES = [
    "Books",
    "Music",
    "Garden",
    "Kitchen",
    "Tools",
    "Toys",
    "Games",
    "Sports",
    "Outdoors",
    "Office",
    "Lighting",
    "Bicycles",
]
ADJECTIVES = ["Small", "Large", "Classic", "Modern", "Sturdy", "Light", "Red", "Blue", "Quiet"]
NOUNS = ["lamp", "kettle", "shovel", "novel", "record", "ball", "desk", "tent", "bell", "saw"]
AUTHORS = ["ana", "bo", "chen", "dee", "eli", "fatima", "gus", "hana", "ivo", "jun"]


class Command(BaseCommand):
    help = "Load demo categories, tags, items and reviews (skipped when already loaded)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--items", type=int, default=2000, help="items to create (default 2000)"
        )
        parser.add_argument("--reviews-per-item", type=int, default=2)

    def handle(self, *args, items, reviews_per_item, **options):
        if items < 1 or reviews_per_item < 0:
            self.stderr.write("--items must be >= 1 and --reviews-per-item >= 0")
            raise SystemExit(2)
        existing = Item.objects.count()
        if existing:
            self.stdout.write(f"demo data already loaded ({existing} items): nothing to do")
            return
        rng = random.Random(42)
        with transaction.atomic():
            categories = Category.objects.bulk_create(
                Category(name=name, slug=name.lower()) for name in CATEGORIES
            )
            tags = Tag.objects.bulk_create(Tag(name=f"tag-{i:02d}") for i in range(30))
            new_items = Item.objects.bulk_create(
                Item(
                    category=categories[i % len(categories)],
                    name=f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i + 1}",
                    description=f"Demo item number {i + 1}.",
                    price_cents=rng.randint(100, 50000),
                )
                for i in range(items)
            )
            Through = Item.tags.through
            Through.objects.bulk_create(
                Through(item_id=item.id, tag_id=tag.id)
                for item in new_items
                for tag in rng.sample(tags, 3)
            )
            Review.objects.bulk_create(
                Review(
                    item=item,
                    author=rng.choice(AUTHORS),
                    rating=rng.randint(1, 5),
                    body="A demo review.",
                )
                for item in new_items
                for _ in range(reviews_per_item)
            )
        total = len(new_items) * (1 + 3 + reviews_per_item) + len(categories) + len(tags)
        self.stdout.write(f"loaded {len(new_items)} items ({total} rows)")
