"""WSGI entry point for mod_wsgi (daemon mode) and mod_wsgi-express.

mod_wsgi passes Apache's ``SetEnv`` values only in the request environ, never in
``os.environ``, so a vhost names the settings file with ``SetEnv DJANGO_ENV_FILE ...``
and Django is set up on the first request, once that value is known.
"""

import logging
import os
import sys
import threading
from pathlib import Path

SITE_DIR = str(Path(__file__).resolve().parent.parent)
if SITE_DIR not in sys.path:
    sys.path.insert(0, SITE_DIR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

_lock = threading.Lock()
_django_app = None


def _load(environ):
    global _django_app
    with _lock:
        if _django_app is None:
            env_file = environ.get("DJANGO_ENV_FILE")
            if env_file:
                os.environ.setdefault("DJANGO_ENV_FILE", env_file)
            from django.core.wsgi import get_wsgi_application

            _django_app = get_wsgi_application()
            warn_if_plain_http()
    return _django_app


def warn_if_plain_http():
    """Once per daemon: production settings (DEBUG off) serving without HTTPS."""
    from django.conf import settings

    if not settings.DEBUG and not settings.HTTPS:
        logging.getLogger("config").warning(
            "DJANGO_HTTPS is off with DEBUG off: cookies are not Secure, no HSTS, no redirect "
            "to HTTPS. Right for ./deploy.sh's local plain-HTTP run only; in production "
            "remove DJANGO_HTTPS=0 from the environment and %s.",
            os.environ.get("DJANGO_ENV_FILE") or "var/site.env",
        )


def application(environ, start_response):
    """The WSGI entry point: loads Django at the first request (settings from ``SetEnv``)."""
    app = _django_app or _load(environ)
    return app(environ, start_response)
