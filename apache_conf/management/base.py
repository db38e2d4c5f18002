"""The one base of ``manage.py apache_conf`` and ``manage.py pgbouncer_conf``."""

import sys

from django.core.management.base import BaseCommand


class GeneratorCommand(BaseCommand):
    """A management command that hands its options to a ``cli`` module.

    The module gives ``add_arguments(parser)``, ``run(options, out, err, command)`` (the
    exit code) and ``command_line(argv)`` (how the files were made, for their headers).
    """

    cli = None
    # The generators only read PostgreSQL's settings: they must run even while other apps'
    # checks fail.
    requires_system_checks = []

    @property
    def command_name(self):
        """The command's name (its module's), to find its own argv."""
        return self.__module__.rpartition(".")[2]

    def add_arguments(self, parser):
        self.cli.add_arguments(parser)

    def handle(self, *args, **options):
        """Run the cli module with the options; exit with its code when not 0."""
        argv = sys.argv[2:] if sys.argv[1:2] == [self.command_name] else []
        code = self.cli.run(
            options, out=self.stdout, err=self.stderr, command=self.cli.command_line(argv)
        )
        if code:
            sys.exit(code)
