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
            "DJANGO_TEST_FAULT_VIEWS is on: the fault suite's test-only views are served "
            "(/_faults/: views that raise, lock, sleep, and an X-Fault-Pid header).",
            hint="Remove DJANGO_TEST_FAULT_VIEWS from the environment and var/site.env.",
            id="faultviews.E001",
        )
    ]
