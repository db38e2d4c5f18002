"""``python site/manage.py apache_conf``: write the Apache/mod_wsgi configs, sized."""

import shlex
import sys

from django.core.management.base import BaseCommand

from apache_conf import cli


class Command(BaseCommand):
    help = (
        "Write prefork.conf, threaded.conf, hybrid.conf and a README, sized from this machine "
        "and PostgreSQL's connection budget (default var/apache_conf/; --reference writes "
        "apache_conf/generated/). Exit 2 when a request exceeds the budget, unless --force."
    )
    # The generator only reads PostgreSQL's settings: it must run even while other apps'
    # checks fail.
    requires_system_checks = []

    def add_arguments(self, parser):
        cli.add_arguments(parser)

    def handle(self, *args, **options):
        argv = sys.argv[2:] if sys.argv[1:2] == ["apache_conf"] else []
        command = " ".join(["python site/manage.py apache_conf", *map(shlex.quote, argv)])
        code = cli.run(options, out=self.stdout, err=self.stderr, command=command)
        if code:
            sys.exit(code)
