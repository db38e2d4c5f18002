"""``python site/manage.py pgbouncer_conf``: write pgbouncer.ini and a userlist.txt template."""

import sys

from django.core.management.base import BaseCommand

from apache_conf import pgbouncer_cli


class Command(BaseCommand):
    help = (
        "Write pgbouncer.ini (transaction pooling, sized from the web hosts' daemons and "
        "PostgreSQL's connection budget, lifetimes from persistent_backend's options) and a "
        "userlist.txt template (default var/pgbouncer/; --reference writes "
        "apache_conf/generated/). Exit 2 when PostgreSQL cannot take the pool, unless --force."
    )
    # Like apache_conf: it only reads PostgreSQL's settings, whatever other checks say.
    requires_system_checks = []

    def add_arguments(self, parser):
        pgbouncer_cli.add_arguments(parser)

    def handle(self, *args, **options):
        argv = sys.argv[2:] if sys.argv[1:2] == ["pgbouncer_conf"] else []
        code = pgbouncer_cli.run(
            options, out=self.stdout, err=self.stderr, command=pgbouncer_cli.command_line(argv)
        )
        if code:
            sys.exit(code)
