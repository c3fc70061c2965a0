"""The two backends of the contract suite: the emulator and real Stripe test mode.

A :class:`Backend` is one stripe-python ``StripeClient`` plus the builders the contracts
use. Every object it creates is recorded and, in real Stripe, tagged so a person can
tell it apart from anything else on the account: ``metadata[meterdesk_contract]=<run
id>`` where the object takes metadata (customers, products, prices, subscriptions, portal
configurations), and the run id in the name where it does not (test clocks' ``name``,
meters' ``display_name`` and ``event_name``). :meth:`Backend.cleanup` removes or retires
exactly those objects and nothing else:

- test clocks are deleted, which deletes their customers, subscriptions and invoices;
- a customer made without a clock is deleted;
- prices, then products, are archived (``active=false``: once used they cannot be
  deleted); meters are deactivated (they cannot be deleted at all);
- a portal configuration is deactivated.

Test clocks advance asynchronously in Stripe (``advancing`` -> ``ready``) and meter
events are aggregated asynchronously, so both are polled, with a long timeout against
Stripe and a short one against the emulator; the same code runs on both.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import stripe

KEY_ENV = "STRIPE_CONTRACT_SECRET_KEY"
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TAG = "meterdesk_contract"
DRAFT_GRACE = 3600  # Stripe's default finalization grace period for renewal invoices

RUN_ID = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "_" + uuid.uuid4().hex[:6]


def stripe_key_problem(key: str | None) -> str | None:
    """Why the real-Stripe half cannot run with ``key`` (None when it can). No request is
    ever made with a key refused here."""
    if not key:
        return f"{KEY_ENV} is not set"
    if key.startswith(LIVE_KEY_PREFIXES):
        return (
            f"{KEY_ENV} is a live-mode key ({key[:8]}...): refused, the contract suite "
            "runs only against Stripe test mode (sk_test_ / rk_test_)"
        )
    if not key.startswith(TEST_KEY_PREFIXES):
        return f"{KEY_ENV} is not a Stripe test-mode secret key (sk_test_ / rk_test_)"
    return None


def contract_key() -> str | None:
    return os.environ.get(KEY_ENV) or None


@dataclass
class Backend:
    name: str  # "emulator" | "stripe"
    client: stripe.StripeClient
    emulator_url: str | None = None
    created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_emulator(self) -> bool:
        return self.name == "emulator"

    @property
    def poll_timeout(self) -> float:
        """Seconds to wait for a clock advance or for usage to be aggregated."""
        return 15.0 if self.is_emulator else 120.0

    @property
    def poll_interval(self) -> float:
        return 0.02 if self.is_emulator else 1.0

    @property
    def metadata(self) -> dict[str, str]:
        return {TAG: RUN_ID}

    def unique(self, purpose: str) -> str:
        """A run-unique name (meter event names, identifiers); at most 100 characters."""
        return f"mdc_{RUN_ID}_{purpose}_{uuid.uuid4().hex[:6]}"

    def wait(self, predicate, *, what: str, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.poll_timeout)
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            time.sleep(self.poll_interval)

    # -- builders ---------------------------------------------------------------------

    def clock(self, frozen_time: int | None = None):
        """A test clock, by default at the start of the current hour (so meter events
        timestamped from it are recent in real time too)."""
        if frozen_time is None:
            frozen_time = int(time.time()) // 3600 * 3600
        clock = self.client.v1.test_helpers.test_clocks.create(
            {"frozen_time": frozen_time, "name": f"{TAG} {RUN_ID}"}
        )
        self.created.append(("test_clock", clock.id))
        return clock

    def customer(self, clock_id: str | None, *, email: str | None = None, pm="pm_card_visa"):
        params = {
            "name": f"Meterdesk contract {RUN_ID}",
            "email": email or f"{self.unique('c')}@example.com",
            "metadata": self.metadata,
            "payment_method": pm,
            "invoice_settings": {"default_payment_method": pm},
        }
        if clock_id:
            params["test_clock"] = clock_id
        customer = self.client.v1.customers.create(params)
        if not clock_id:  # deleted with its clock otherwise
            self.created.append(("customer", customer.id))
        return customer

    def clock_customer(self, **kwargs):
        clock = self.clock()
        return clock, self.customer(clock.id, **kwargs)

    def meter(self, purpose: str, formula: str = "sum"):
        event_name = self.unique(purpose)
        meter = self.client.v1.billing.meters.create(
            {
                "display_name": f"{TAG} {RUN_ID} {purpose}",
                "event_name": event_name,
                "default_aggregation": {"formula": formula},
                "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            }
        )
        self.created.append(("meter", meter.id))
        return meter

    def product(self, name: str = "Meterdesk contract plan"):
        product = self.client.v1.products.create({"name": name, "metadata": self.metadata})
        self.created.append(("product", product.id))
        return product

    def price(self, product_id: str, **params):
        price = self.client.v1.prices.create(
            {"product": product_id, "currency": "usd", "metadata": self.metadata, **params}
        )
        self.created.append(("price", price.id))
        return price

    def metered_price(self, product_id: str, meter_id: str, **pricing):
        recurring = {"interval": "month", "usage_type": "metered", "meter": meter_id}
        return self.price(product_id, recurring=recurring, **pricing)

    def subscribe(self, customer_id: str, price_ids: list[str], **extra):
        return self.client.v1.subscriptions.create(
            {
                "customer": customer_id,
                "items": [{"price": p} for p in price_ids],
                "metadata": self.metadata,
                **extra,
            }
        )

    def portal_configuration(self):
        config = self.client.v1.billing_portal.configurations.create(
            {
                "features": {"invoice_history": {"enabled": True}},
                "metadata": self.metadata,
                "name": f"{TAG} {RUN_ID}",
            }
        )
        self.created.append(("portal_configuration", config.id))
        return config

    # -- usage, clocks, invoices -------------------------------------------------------

    def send_usage(self, customer_id: str, event_name: str, values, *, start: int) -> None:
        """One v1 meter event per value, one second apart from ``start``."""
        for i, value in enumerate(values):
            self.client.v1.billing.meter_events.create(
                {
                    "event_name": event_name,
                    "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                    "identifier": self.unique(f"e{i}"),
                    "timestamp": start + i,
                }
            )

    def summary_total(self, meter_id: str, customer_id: str, start: int, end: int) -> int:
        data = self.client.v1.billing.meters.event_summaries.list(
            meter_id, {"customer": customer_id, "start_time": start, "end_time": end}
        ).data
        return sum(int(s.aggregated_value) for s in data)

    def wait_for_usage(self, meter_id, customer_id, *, start: int, expected: int) -> None:
        """Stripe aggregates meter events asynchronously: wait until the summary of the
        hour from ``start`` (minute-aligned) shows ``expected``, so a period closed next
        bills it."""
        self.wait(
            lambda: self.summary_total(meter_id, customer_id, start, start + 3600) == expected,
            what=f"meter {meter_id} to aggregate {expected}",
        )

    def advance(self, clock_id: str, to: int):
        """Advance a test clock and wait until it is ``ready`` again (asynchronous in
        Stripe: ``advancing`` first)."""
        clock = self.client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": to})
        assert clock.status in ("advancing", "ready"), clock.status

        def ready():
            current = self.client.v1.test_helpers.test_clocks.retrieve(clock_id)
            assert current.status != "internal_failure", current.status_details
            return current if current.status == "ready" else None

        return self.wait(ready, what=f"test clock {clock_id} to reach {to}")

    def cycle_invoice(self, subscription_id: str):
        """The one renewal (``subscription_cycle``) invoice of a subscription."""
        invoices = self.client.v1.invoices.list(
            {"subscription": subscription_id, "limit": 100}
        ).data
        cycles = [i for i in invoices if i.billing_reason == "subscription_cycle"]
        assert len(cycles) == 1, [(i.id, i.billing_reason) for i in invoices]
        return cycles[0]

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Delete or retire what this backend created; returns what could not be."""
        v1 = self.client.v1
        steps = {
            "test_clock": v1.test_helpers.test_clocks.delete,
            "customer": v1.customers.delete,
            "portal_configuration": lambda i: v1.billing_portal.configurations.update(
                i, {"active": False}
            ),
            "price": lambda i: v1.prices.update(i, {"active": False}),
            "product": lambda i: v1.products.update(i, {"active": False}),
            "meter": v1.billing.meters.deactivate,
        }
        left: list[str] = []
        for kind, step in steps.items():  # clocks first: their subscriptions go with them
            for created_kind, object_id in self.created:
                if created_kind != kind:
                    continue
                try:
                    step(object_id)
                except stripe.StripeError as exc:
                    left.append(f"{kind} {object_id}: {exc.user_message or exc}")
        self.created.clear()
        return left


def emulator_backend(url: str) -> Backend:
    client = stripe.StripeClient(
        "sk_test_meterdesk_contract", base_addresses={"api": url, "meter_events": url}
    )
    return Backend("emulator", client, emulator_url=url)


def stripe_backend(key: str) -> Backend:
    assert stripe_key_problem(key) is None  # never a live key
    return Backend("stripe", stripe.StripeClient(key, max_network_retries=2))
