from django.core.management.base import BaseCommand

from usage.services.keys import ingest_key_create


class Command(BaseCommand):
    help = "Create an ingest key for the usage API; the key is printed once, on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        key, raw_key = ingest_key_create(name=name)
        self.stdout.write(f"Created ingest key {key.name!r} ({key.prefix}…). It is not stored:")
        self.stdout.write(raw_key)
