"""WSGI entry point for mod_wsgi (daemon mode) and mod_wsgi-express.

mod_wsgi passes Apache's ``SetEnv`` values only in the request environ, never in
``os.environ``, so a vhost names the settings file with ``SetEnv DJANGO_ENV_FILE ...``
and Django is set up on the first request, once that value is known.
"""

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
    return _django_app


def application(environ, start_response):
    app = _django_app or _load(environ)
    return app(environ, start_response)
