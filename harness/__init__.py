"""What the tests and the benchmark start and wait for: a throwaway PostgreSQL cluster
(``pgcluster``), the site under mod_wsgi-express (``modwsgi``), PgBouncer (``pgbouncer``),
free ports (``net``), one poll/wait helper (``waiting``), a bounded HTTP load
(``load``), and ``manage.py`` in a cleaned environment (``site``).

Product code (persistent_backend, dashboard, apache_conf, site) never imports this
package; it imports nothing from ``tests`` or ``bench``.
"""
