"""Create or update the staff superuser; the password comes from ADMIN_PASSWORD only."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Ensure a staff superuser exists with the password in $ADMIN_PASSWORD (never printed)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("ADMIN_USER", "admin"))

    def handle(self, *args, username, **options):
        password = os.environ.get("ADMIN_PASSWORD", "")
        if not password:
            raise CommandError("ADMIN_PASSWORD is not set: export it (it is never read from argv)")
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = user.is_active = True
        if created or not user.check_password(password):
            user.set_password(password)
        user.save()
        self.stdout.write(f"{'created' if created else 'kept'} staff superuser {username!r}")
