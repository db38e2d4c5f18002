import sys

from tests.django_suite.suite import main

sys.exit(main())
