"""The fault suite's settings: the site's own, plus the /_faults/ views and the
X-Fault-Pid header. Used by the suite's servers only (``DJANGO_SETTINGS_MODULE``)."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults.faultviews"]
MIDDLEWARE = ["tests.faults.faultviews.middleware.ProcessIdMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "tests.faults.faultviews.site_urls"
