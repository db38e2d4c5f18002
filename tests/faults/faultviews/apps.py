from django.apps import AppConfig
from django.core import checks


class FaultViewsConfig(AppConfig):
    name = "tests.faults.faultviews"
    label = "faultviews"
    verbose_name = "Fault-suite test views"

    def ready(self):
        checks.register(refuse_deploy, checks.Tags.security, deploy=True)


def refuse_deploy(app_configs=None, **kwargs):
    return [
        checks.Error(
            "The fault suite's test settings are in use: its test-only views are served "
            "(/_faults/: views that raise, lock, sleep, and an X-Fault-Pid header).",
            hint="Use DJANGO_SETTINGS_MODULE=config.settings (the default) in production.",
            id="faultviews.E001",
        )
    ]
