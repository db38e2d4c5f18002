"""Plain psycopg2 connections to a test server, seen from outside the site.

``PgClient`` gives ``connect()`` (autocommit, a connect timeout) and ``query()`` (one
statement on a fresh connection, or on the one passed) to whatever says how to reach the
server: the throwaway cluster (``harness.pgcluster.PgCluster``) or the settings of the
test database (``SettingsClient``).
"""

import psycopg2


class PgClient:
    """Connections with ``connection_params()``; ``default_dbname`` when none is named."""

    default_dbname = "postgres"
    application_name = None

    def connection_params(self):
        """{"host", "port", "user", "password"} of the server (a subclass says)."""
        raise NotImplementedError

    def connect(self, dbname=None, autocommit=True, timeout=5, **kwargs):
        """A psycopg2 connection to ``dbname`` (autocommit by default, bounded connect)."""
        params = {
            **self.connection_params(),
            "dbname": dbname or self.default_dbname,
            "connect_timeout": timeout,
        }
        if self.application_name:
            params["application_name"] = self.application_name
        conn = psycopg2.connect(**params, **kwargs)
        conn.autocommit = autocommit
        return conn

    def accepting(self, timeout=1):
        """True when a connection succeeds now."""
        try:
            self.connect(timeout=timeout).close()
            return True
        except psycopg2.OperationalError:
            return False

    def query(self, sql, params=None, dbname=None, conn=None):
        """Run one statement (on ``conn``, else a fresh connection); all rows, or []."""
        own = conn is None
        conn = conn or self.connect(dbname)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            if own:
                conn.close()


class SettingsClient(PgClient):
    """The server of a Django ``settings_dict`` (its HOST, PORT, USER, PASSWORD)."""

    def __init__(self, settings_dict, default_dbname="postgres", application_name=None):
        self.settings_dict = settings_dict
        self.default_dbname = default_dbname
        self.application_name = application_name

    def connection_params(self):
        """host, port, user and password of the Django settings dict."""
        s = self.settings_dict
        return {
            "host": s["HOST"],
            "port": s["PORT"],
            "user": s["USER"],
            "password": s["PASSWORD"] or None,
        }
