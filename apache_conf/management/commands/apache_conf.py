"""``manage.py apache_conf [install|uninstall]``: write the Apache/mod_wsgi configs, sized,
or install one on the system Apache (``python -m apache_conf`` is the same without settings)."""

from apache_conf import cli
from apache_conf.management.base import GeneratorCommand


class Command(GeneratorCommand):
    """``manage.py apache_conf``: :mod:`apache_conf.cli` under Django."""

    help = (
        "Write prefork.conf, threaded.conf, hybrid.conf and a README, sized from this machine "
        "and PostgreSQL's connection budget (default var/apache_conf/; --reference writes "
        "apache_conf/generated/); 'install'/'uninstall' put one variant on Debian's system "
        "Apache. Exit 2 when a request exceeds the budget, unless --force."
    )
    cli = cli
