from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = [
    ("alice", "Alice"),
    ("bob", "Bob"),
]
DEMO_PASSWORD = "vask-demo-password"


class Command(BaseCommand):
    help = "Create (or reset) the two demo users alice and bob, password 'vask-demo-password'."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, first_name in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            user.first_name = first_name
            user.set_password(DEMO_PASSWORD)
            user.save()
            self.stdout.write(
                f"{'created' if created else 'updated'} {username} (pk={user.pk})"
            )
