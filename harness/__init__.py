"""What the tests and the benchmark start and wait for: a throwaway PostgreSQL cluster
(``pgcluster``), the site under mod_wsgi-express (``modwsgi``), PgBouncer (``pgbouncer``),
free ports (``net``), one poll/wait helper (``waiting``), a bounded HTTP load
(``load``), ``manage.py`` in a cleaned environment (``site``), background sampling
(``sampling``) and Debian's Chromium for the browser tests (``browser``).

Product code (persistent_backend, dashboard, apache_conf, site) never imports this
package; it imports nothing from ``tests`` or ``bench``.
"""
