"""Mirror everything Meterdesk uses from Stripe: meters, then dj-stripe's billing objects.

Staff run this from the admin after changes made directly in Stripe (or the
emulator's dashboard). Each object is synced on its own: one object dj-stripe
cannot mirror is reported and the rest still sync.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import stripe
from django.db import DatabaseError, transaction
from djstripe.models import Customer, Invoice, Price, Product, Subscription

from billing.services.meters import meters_sync_from_stripe
from billing.stripe_api import api_key, stripe_client


@dataclass
class SyncReport:
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.counts.items())


def _sync_each(*, name: str, model, objects: Iterable, report: SyncReport, key: str) -> None:
    synced = 0
    for obj in objects:
        try:
            with transaction.atomic():  # a savepoint: one bad object leaves the rest
                model.sync_from_stripe_data(obj, api_key=key)
        except stripe.StripeError as exc:
            report.errors.append(f"{name} {obj.id}: {exc.user_message or exc}")
        except (DatabaseError, KeyError, TypeError, ValueError) as exc:
            report.errors.append(f"{name} {obj.id}: {type(exc).__name__}: {exc}")
        else:
            synced += 1
    report.counts[name] = synced


def stripe_sync_everything(*, client=None) -> SyncReport:
    """Sync meters into Meterdesk, and customers, products, prices, subscriptions and
    invoices into dj-stripe's tables. Raises ``stripe.StripeError`` when a list call
    fails (Stripe unreachable); per-object failures are in the report."""
    client = client or stripe_client()
    key = api_key()
    report = SyncReport()
    report.counts["meters"] = meters_sync_from_stripe(client=client)

    lists: list[tuple[str, object, Callable[[], Iterable]]] = [
        ("products", Product, lambda: client.v1.products.list({"limit": 100})),
        (
            "prices",
            Price,
            # Tiers are only returned when expanded; the pricing engine needs them.
            lambda: client.v1.prices.list({"limit": 100, "expand": ["data.tiers"]}),
        ),
        ("customers", Customer, lambda: client.v1.customers.list({"limit": 100})),
        (
            "subscriptions",
            Subscription,
            lambda: client.v1.subscriptions.list({"limit": 100, "status": "all"}),
        ),
        ("invoices", Invoice, lambda: client.v1.invoices.list({"limit": 100})),
    ]
    for name, model, fetch in lists:
        _sync_each(
            name=name, model=model, objects=fetch().auto_paging_iter(), report=report, key=key
        )
    return report
