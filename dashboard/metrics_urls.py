"""/metrics (included at the site's root by config/urls.py)."""

from django.urls import path

from dashboard import views

urlpatterns = [path("", views.prometheus_metrics, name="prometheus-metrics")]
