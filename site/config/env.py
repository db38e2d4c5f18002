"""Settings input: the process environment first, then the env file that deploy.sh writes.

mod_wsgi does not copy Apache's ``SetEnv`` into ``os.environ``, so a production daemon
reads its secrets from a file (mode 600) instead. Its path is ``DJANGO_ENV_FILE`` or
``<repo>/var/site.env``.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values

REPO_DIR = Path(__file__).resolve().parents[2]
DEFAULT_ENV_FILE = REPO_DIR / "var" / "site.env"

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_file_path():
    """``DJANGO_ENV_FILE``, else var/site.env."""
    return Path(os.environ.get("DJANGO_ENV_FILE") or DEFAULT_ENV_FILE)


def load_env_file(path=None):
    """Return the key/value pairs of the env file, or {} if there is none."""
    path = Path(path) if path else env_file_path()
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class Env:
    """Looks a name up in ``os.environ``, then in the env file."""

    def __init__(self, file_values):
        self.file_values = file_values

    def str(self, name, default=None):
        """The value, or ``default`` when the name is set nowhere."""
        if name in os.environ:
            return os.environ[name]
        return self.file_values.get(name, default)

    def bool(self, name, default=False):
        """1/0, true/false, yes/no, on/off; ImproperlyConfigured for anything else."""
        value = self.str(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a boolean: use 1/0, true/false, on/off"
        )

    def int(self, name, default):
        """An integer (``default`` when unset or empty); ImproperlyConfigured if not one."""
        value = self.str(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None

    def list(self, name, default=()):
        """Comma-separated values, blanks dropped."""
        value = self.str(name)
        if value is None:
            return list(default)
        return [part.strip() for part in value.split(",") if part.strip()]
