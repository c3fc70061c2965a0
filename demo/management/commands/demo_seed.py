from django.core.management.base import BaseCommand

from demo.seed import LOGINS_FILE, demo_is_seeded, demo_seed


class Command(BaseCommand):
    help = "Seed the demo: catalog, six accounts with 7 weeks of usage, invoices, alerts."

    def handle(self, *args, **options):
        if demo_is_seeded():
            self.stdout.write("The demo is already seeded.")
        else:
            demo_seed(log=self.stdout.write)
            self.stdout.write(self.style.SUCCESS("Demo seeded."))
        if LOGINS_FILE.exists():
            self.stdout.write(LOGINS_FILE.read_text())
