"""Test-only views and a header for the fault suite (``DJANGO_TEST_FAULT_VIEWS=1``).

Never enabled in production: ``site/config/settings.py`` adds this app only when the fault
tests set ``DJANGO_TEST_FAULT_VIEWS=1``, and ``manage.py check --deploy`` fails while it
is on (``faultviews.E001``).
"""
