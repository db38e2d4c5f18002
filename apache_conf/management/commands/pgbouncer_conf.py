"""``manage.py pgbouncer_conf``: write pgbouncer.ini and a userlist.txt template."""

from apache_conf import pgbouncer_cli
from apache_conf.management.base import GeneratorCommand


class Command(GeneratorCommand):
    """``manage.py pgbouncer_conf``: :mod:`apache_conf.pgbouncer_cli` under Django."""

    help = (
        "Write pgbouncer.ini (transaction pooling, sized from the web hosts' daemons and "
        "PostgreSQL's connection budget, lifetimes from persistent_backend's options) and a "
        "userlist.txt template (default var/pgbouncer/; --reference writes "
        "apache_conf/generated/). Exit 2 when PostgreSQL cannot take the pool, unless --force."
    )
    cli = pgbouncer_cli
