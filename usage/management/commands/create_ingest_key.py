from django.core.management.base import BaseCommand

from usage.models import IngestKey
from usage.services.keys import ingest_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for the usage API; the key is printed once, on the last line. "
        "--scope read makes a read-only key (the read API, no ingestion)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            choices=IngestKey.Scope.values,
            default=IngestKey.Scope.INGEST,
            help="ingest (send and read usage, the default) or read (read only)",
        )

    def handle(self, *args, name, scope, **options):
        key, raw_key = ingest_key_create(name=name, scope=scope)
        kind = "read-only API key" if scope == IngestKey.Scope.READ else "ingest key"
        self.stdout.write(f"Created {kind} {key.name!r} ({key.prefix}…). It is not stored:")
        self.stdout.write(raw_key)
