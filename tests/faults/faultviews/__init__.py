"""Test-only views and a header for the fault suite.

They live only in the test tree and are mounted only by the fault suite's own settings
module, ``tests.faults.faultviews.settings`` (``DJANGO_SETTINGS_MODULE``): the site's
settings (``config.settings``) never name this package, whatever the environment says,
and ``manage.py check --deploy`` fails under the test settings (``faultviews.E001``).
"""
