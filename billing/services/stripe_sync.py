"""Mirror everything Meterdesk uses from Stripe: meters, then dj-stripe's billing objects.

Staff run this from the admin after changes made directly in Stripe (or the
emulator's dashboard). Each object is synced on its own: one object dj-stripe
cannot mirror is reported and the rest still sync.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain

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


def _on_every_clock(client, list_page: Callable[[dict], object]) -> Iterator:
    """Every object of a list call that Stripe filters by test clock (customers,
    subscriptions): those on no clock, then those of each test clock. Without
    ``test_clock`` Stripe leaves out objects on a test clock (test mode only)."""
    clocks = client.v1.test_helpers.test_clocks.list({"limit": 100}).auto_paging_iter()
    pages = [list_page({})] + [list_page({"test_clock": clock.id}) for clock in clocks]
    return chain.from_iterable(page.auto_paging_iter() for page in pages)


def stripe_sync_everything(*, client=None) -> SyncReport:
    """Sync meters into Meterdesk, and customers, products, prices, subscriptions and
    invoices into dj-stripe's tables. Raises ``stripe.StripeError`` when a list call
    fails (Stripe unreachable); per-object failures are in the report."""
    client = client or stripe_client()
    key = api_key()
    report = SyncReport()
    report.counts["meters"] = meters_sync_from_stripe(client=client)

    lists: list[tuple[str, object, Callable[[], Iterable]]] = [
        ("products", Product, lambda: client.v1.products.list({"limit": 100}).auto_paging_iter()),
        (
            "prices",
            Price,
            # Tiers are only returned when expanded; the pricing engine needs them.
            lambda: client.v1.prices.list(
                {"limit": 100, "expand": ["data.tiers"]}
            ).auto_paging_iter(),
        ),
        (
            "customers",
            Customer,
            lambda: _on_every_clock(
                client, lambda f: client.v1.customers.list({"limit": 100, **f})
            ),
        ),
        (
            "subscriptions",
            Subscription,
            lambda: _on_every_clock(
                client,
                lambda f: client.v1.subscriptions.list({"limit": 100, "status": "all", **f}),
            ),
        ),
        ("invoices", Invoice, lambda: client.v1.invoices.list({"limit": 100}).auto_paging_iter()),
    ]
    for name, model, fetch in lists:
        _sync_each(name=name, model=model, objects=fetch(), report=report, key=key)
    return report
