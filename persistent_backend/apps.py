"""Add ``"persistent_backend"`` to INSTALLED_APPS for its system checks and toolbar panel."""

from django.apps import AppConfig


class PersistentBackendConfig(AppConfig):
    """The app: registers the system checks and the debug-toolbar panel's template."""

    name = "persistent_backend"
    verbose_name = "Persistent PostgreSQL connections"

    def ready(self):
        """Import checks.py so that its system checks are registered."""
        from persistent_backend import checks  # noqa: F401  (registers the checks)
