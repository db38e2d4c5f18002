"""The site's URLs plus the test-only views at /_faults/ (the fault suite's settings)."""

from django.urls import include, path

from config.urls import handler500
from config.urls import urlpatterns as site_urlpatterns

__all__ = ["handler500", "urlpatterns"]

urlpatterns = [*site_urlpatterns, path("_faults/", include("tests.faults.faultviews.urls"))]
