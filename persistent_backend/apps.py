"""Add ``"persistent_backend"`` to INSTALLED_APPS for its system checks and toolbar panel."""

from django.apps import AppConfig


class PersistentBackendConfig(AppConfig):
    name = "persistent_backend"
    verbose_name = "Persistent PostgreSQL connections"

    def ready(self):
        from persistent_backend import checks  # noqa: F401  (registers the checks)
