"""``python -m apache_conf``: see :func:`apache_conf.cli.main`."""

from apache_conf.cli import main

raise SystemExit(main())
