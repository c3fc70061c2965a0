"""Meters: pushed to Stripe from Meterdesk, and synced back."""

import logging

from django.db import transaction
from django.utils import timezone

from billing.models import Meter
from billing.stripe_api import stripe_client

log = logging.getLogger(__name__)


class MeterConflict(ValueError):
    """The Stripe meter differs in a way Stripe does not allow to change."""


def _stripe_meters_by_event_name(client) -> dict[str, object]:
    meters = client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()
    return {m.event_name: m for m in meters}


def _apply_remote(meter: Meter, remote) -> None:
    meter.stripe_id = remote.id
    meter.status = remote.status
    meter.synced_at = timezone.now()


def meter_push_to_stripe(*, meter: Meter, client=None, remote_by_name=None) -> Meter:
    """Create the meter in Stripe, or adopt the existing one with the same event name.

    Only ``display_name`` may change once a Stripe meter exists; a different
    aggregation is reported, not silently ignored. Count meters are created with the
    ``sum`` formula and receive counts as values (pre-aggregated reports stay exact).
    """
    client = client or stripe_client()
    remote_by_name = (
        remote_by_name if remote_by_name is not None else _stripe_meters_by_event_name(client)
    )
    remote = remote_by_name.get(meter.event_name)
    if remote is None:
        remote = client.v1.billing.meters.create(
            {
                "display_name": meter.display_name,
                "event_name": meter.event_name,
                "default_aggregation": {"formula": meter.stripe_formula},
                "customer_mapping": {
                    "type": "by_id",
                    "event_payload_key": meter.customer_payload_key,
                },
                "value_settings": {"event_payload_key": meter.value_payload_key},
            },
            {"idempotency_key": f"meterdesk-meter-create-{meter.event_name}"},
        )
    else:
        formula = remote.default_aggregation.formula
        if formula != meter.stripe_formula:
            raise MeterConflict(
                f"meter {meter.event_name!r}: Stripe's formula is {formula!r} but Meterdesk "
                f"needs {meter.stripe_formula!r}; Stripe cannot change a meter's formula, "
                "so create a meter with a new event name instead"
            )
        if remote.display_name != meter.display_name:
            remote = client.v1.billing.meters.update(
                remote.id, {"display_name": meter.display_name}
            )
    _apply_remote(meter, remote)
    meter.save()
    return meter


def _remote_for(meter: Meter, by_id: dict, by_name: dict):
    """The Stripe meter a local one is: by id once known, else by event name (an
    active meter preferred: Stripe may hold an old, deactivated one of the same name)."""
    if meter.stripe_id and meter.stripe_id in by_id:
        return by_id[meter.stripe_id]
    candidates = by_name.get(meter.event_name, [])
    return next((m for m in candidates if m.status == "active"), None) or next(
        iter(candidates), None
    )


def meters_sync_from_stripe(*, client=None) -> int:
    """Refresh id and status of every local meter from Stripe (``GET /v1/billing/meters``,
    all statuses); returns how many matched. A meter deactivated in Stripe becomes
    inactive here, and ingestion refuses it once its meter cache expires
    (``USAGE_METER_CACHE_SECONDS``). Beat runs this every ``BILLING_METER_SYNC_SECONDS``.
    Stripe is read before the transaction, so no row lock waits on the network."""
    client = client or stripe_client()
    remote = list(client.v1.billing.meters.list({"limit": 100}).auto_paging_iter())
    by_id = {m.id: m for m in remote}
    by_name: dict[str, list] = {}
    for m in remote:
        by_name.setdefault(m.event_name, []).append(m)
    matched = 0
    with transaction.atomic():
        for meter in Meter.objects.select_for_update().order_by("pk"):
            found = _remote_for(meter, by_id, by_name)
            if found is None:
                continue
            if found.status != meter.status:
                log.warning(
                    "meter %s is %s in Stripe (was %s here)",
                    meter.event_name,
                    found.status,
                    meter.status,
                )
            _apply_remote(meter, found)
            meter.save(update_fields=["stripe_id", "status", "synced_at"])
            matched += 1
    return matched
