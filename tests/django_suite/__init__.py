"""Django's own test suite against persistent_backend (``tests/django_suite/run``)."""
