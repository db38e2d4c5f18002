"""Staff-only live dashboard: the page and its JSON snapshot."""

from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.index, name="index"),
    path("api/snapshot", views.api_snapshot, name="snapshot"),
]
