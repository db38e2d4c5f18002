from django.contrib import admin

from catalog.models import Category, Item, Review, Tag


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "category", "price_cents"]
    list_filter = ["category"]
    search_fields = ["name"]
    list_select_related = ["category"]
    filter_horizontal = ["tags"]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "author", "rating"]
    raw_id_fields = ["item"]
