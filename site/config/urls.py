from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from catalog import views

handler500 = "config.errors.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("items/<int:item_id>/", views.item_detail, name="item-detail"),
    path("nodb/", views.no_db, name="no-db"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("metrics", include("dashboard.metrics_urls")),
]

if settings.DEBUG:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
