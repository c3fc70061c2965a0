from django.core.management.base import BaseCommand

from billing.services.thin_events import thin_event_destination_register
from billing.services.webhook_endpoints import webhook_endpoint_register


class Command(BaseCommand):
    help = (
        "Register this server's dj-stripe webhook URL and its thin-event receiver (a v2 "
        "event destination for meter error reports) with Stripe (or the emulator)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options):
        endpoint = webhook_endpoint_register(base_url=base_url)
        self.stdout.write(f"Webhook endpoint {endpoint.id} -> {endpoint.url}")
        destination = thin_event_destination_register(base_url=base_url)
        self.stdout.write(f"Event destination {destination.stripe_id} -> {destination.url}")
