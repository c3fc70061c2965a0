"""A reporting worker that dies at the worst moment: one v2 stream pass whose process is
SIGKILLed right after the stream call returned and before any report is marked sent.

    DJANGO_SETTINGS_MODULE=config.settings.test DATABASE_URL=... \
        python -m tests.usage.stream_kill_worker

Used by tests/usage/test_report_stream.py (the resend after a killed worker)."""

from __future__ import annotations

import os
import signal

import django


def main() -> None:
    django.setup()
    from billing.stripe_api import stripe_client
    from usage.services.report_stream import usage_reports_stream_due

    client = stripe_client(max_network_retries=0)  # the pass's own client (cached)
    service = client.v2.billing.meter_event_stream
    original = service.create

    def create_then_die(*args, **kwargs):
        original(*args, **kwargs)  # Stripe has the events (it answered)
        os.kill(os.getpid(), signal.SIGKILL)  # and nothing is marked sent

    service.create = create_then_die
    usage_reports_stream_due()
    raise SystemExit("the stream was never called")


if __name__ == "__main__":
    main()
