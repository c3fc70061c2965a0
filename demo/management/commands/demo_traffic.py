import random
import time

import requests
from django.core.management.base import BaseCommand, CommandError

from demo.seed import INGEST_KEY_FILE
from demo.traffic import traffic_tick


class Command(BaseCommand):
    help = "Keep sending live usage for the demo accounts through the ingestion API."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--interval", type=float, default=2.0)
        parser.add_argument("--ticks", type=int, default=0, help="stop after N (0: forever)")

    def handle(self, *args, base_url: str, interval: float, ticks: int, **options):
        if not INGEST_KEY_FILE.exists():
            raise CommandError("run `manage.py demo_seed` first (it creates the ingest key)")
        key = INGEST_KEY_FILE.read_text().strip()
        rng, session, tick = random.Random(), requests.Session(), 0
        while not ticks or tick < ticks:
            try:
                status, sent = traffic_tick(
                    rng=rng,
                    base_url=base_url,
                    key=key,
                    session=session,
                    clocks_to_now=tick % 15 == 0,
                    seconds=interval,
                )
                self.stdout.write(f"sent {sent} events: HTTP {status}")
            except requests.RequestException as exc:
                self.stdout.write(f"web server not reachable yet: {exc}")
            tick += 1
            time.sleep(interval)
