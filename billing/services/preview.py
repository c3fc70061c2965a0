"""This period's invoice for an account: Stripe's preview next to Meterdesk's estimate.

Stripe's side is ``POST /v1/invoices/create_preview`` for the account's current
subscription: the renewal invoice as it stands now (licensed fees for the next
period in advance, metered usage of the running period in arrears). Meterdesk's side
comes from the pricing engine (:func:`billing.pricing.estimate_current_period`):
licensed items at their quantity plus metered items at their usage so far. The two
are independent implementations of the same rules, so for the same usage their
totals must agree; the difference is shown to staff.

Usage for the local estimate is ``quantities`` (price id -> units) when the caller
has it (the usage ledger), else Stripe's meter event summaries over the current
period. Stripe being unreachable or refusing never raises: the preview carries
``stripe_error`` and whatever could still be computed from the dj-stripe mirror.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe

from billing.mirror.customers import live_customer_id_for_account
from billing.mirror.prices import mirrored_price_spec
from billing.mirror.shapes import (
    item_price_id,
    line_price_id,
    subscription_current_period,
    subscription_items,
    timestamp,
)
from billing.mirror.subscriptions import live_subscription_for_account
from billing.models import Account, Meter
from billing.money import format_money
from billing.pricing import estimate_current_period, lines_total, price_spec_from_stripe
from billing.pricing.types import LineItem, PriceSpec
from billing.stripe_api import stripe_client

USAGE_GIVEN = "given"
USAGE_STRIPE_SUMMARIES = "stripe_meter_summaries"

_MINUTE = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewLine:
    """One invoice line in integer minor units, from either side."""

    description: str
    price_id: str
    quantity: int
    amount: int
    currency: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    kind: str = ""  # "licensed" | "metered" on local lines; "" when Stripe's line

    @property
    def amount_display(self) -> str:
        return format_money(self.amount, self.currency)

    @property
    def quantity_display(self) -> str:
        return f"{self.quantity:,}"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoicePreview:
    """Both views of the account's current-period invoice.

    Totals are integers in minor units of ``currency``; ``None`` when that side
    could not be computed (see ``stripe_error`` and ``local_error``).
    """

    account_id: int
    customer_id: str | None = None
    subscription_id: str | None = None
    currency: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    stripe_total: int | None = None
    stripe_lines: tuple[PreviewLine, ...] = ()
    stripe_lines_complete: bool = True
    local_total: int | None = None
    local_lines: tuple[PreviewLine, ...] = ()
    usage_source: str | None = None
    # Stripe's preview then has no licensed fees (there is no next period), while the
    # estimate still counts this period's: the difference is expected.
    cancel_at_period_end: bool = False
    stripe_error: str | None = None
    local_error: str | None = None

    @property
    def has_subscription(self) -> bool:
        return self.subscription_id is not None

    @property
    def difference(self) -> int | None:
        """Stripe's total minus the local estimate, in minor units (0 when they agree)."""
        if self.stripe_total is None or self.local_total is None:
            return None
        return self.stripe_total - self.local_total

    def _display(self, amount: int | None) -> str:
        if amount is None or self.currency is None:
            return "\u2014"
        return format_money(amount, self.currency)

    @property
    def stripe_total_display(self) -> str:
        return self._display(self.stripe_total)

    @property
    def local_total_display(self) -> str:
        return self._display(self.local_total)

    @property
    def difference_display(self) -> str:
        return self._display(self.difference)


class _StripeUnavailable(Exception):
    """Raised internally when a Stripe call fails; carries a message for staff."""


def describe_stripe_error(exc: stripe.StripeError) -> str:
    """A one-line message for staff: what kind of failure, and Stripe's own words."""
    if isinstance(exc, stripe.APIConnectionError):
        return f"Stripe could not be reached: {exc.user_message or exc}"
    message = exc.user_message or str(exc)
    status = f" (HTTP {exc.http_status})" if exc.http_status else ""
    return f"Stripe refused the request{status}: {message}"


def _whole_number(value: Any, *, what: str) -> int:
    """A usage value Stripe returns as a JSON number (possibly ``12345.0``)."""
    number = Decimal(str(value))
    if number != number.to_integral_value():
        raise ValueError(f"{what} is not a whole number: {value!r}")
    return int(number)


def _stripe_lines(invoice: Mapping[str, Any]) -> tuple[tuple[PreviewLine, ...], bool]:
    lines = invoice.get("lines") or {}
    currency = invoice["currency"]
    rows = []
    for line in lines.get("data") or []:
        period = line.get("period") or {}
        quantity = line.get("quantity")
        rows.append(
            PreviewLine(
                description=line.get("description") or "",
                price_id=line_price_id(line),
                quantity=0 if quantity is None else int(quantity),
                amount=int(line["amount"]),
                currency=line.get("currency") or currency,
                period_start=timestamp(period.get("start")),
                period_end=timestamp(period.get("end")),
            )
        )
    return tuple(rows), not lines.get("has_more", False)


def _local_line(line: LineItem) -> PreviewLine:
    return PreviewLine(
        description=line.description,
        price_id=line.price_id,
        quantity=line.quantity,
        amount=line.amount,
        currency=line.currency,
        period_start=line.period_start,
        period_end=line.period_end,
        kind=line.kind,
    )


def _price_spec(*, price_id: str, client, reachable: bool) -> PriceSpec:
    spec = mirrored_price_spec(price_id=price_id)
    if spec is not None:
        return spec
    if not reachable:
        raise _StripeUnavailable(f"price {price_id} is not mirrored and Stripe is unreachable")
    try:
        remote = client.v1.prices.retrieve(price_id, {"expand": ["tiers"]})
    except stripe.StripeError as exc:
        raise _StripeUnavailable(describe_stripe_error(exc)) from exc
    return price_spec_from_stripe(remote)


def _meter_formula(*, meter_id: str, client) -> str:
    meter = Meter.objects.filter(stripe_id=meter_id).first()
    if meter is not None:
        return meter.stripe_formula
    return client.v1.billing.meters.retrieve(meter_id).default_aggregation.formula


def meter_usage_from_stripe(
    *, client, meter_id: str, customer_id: str, start: datetime, end: datetime
) -> int:
    """A customer's usage of a meter over ``[start, end)`` from Stripe's event summaries.

    Stripe wants minute-aligned bounds, so the start is floored and the end ceiled
    to the minute. For ``sum`` meters (and ``count`` meters, which Meterdesk
    creates as ``sum``) the summaries' values add up; for ``last`` meters the value
    of the latest window is the usage. Summaries are eventually consistent:
    Meterdesk's own ledger is the source of truth for live numbers, callers that
    have it pass ``quantities`` to :func:`invoice_preview` instead.
    """
    start_ts = int(start.timestamp()) // _MINUTE * _MINUTE
    end_ts = -(-int(end.timestamp()) // _MINUTE) * _MINUTE
    summaries = client.v1.billing.meters.event_summaries.list(
        meter_id,
        {"customer": customer_id, "start_time": start_ts, "end_time": end_ts, "limit": 100},
    )
    rows = list(summaries.auto_paging_iter())
    if not rows:
        return 0
    what = f"meter {meter_id} usage"
    if _meter_formula(meter_id=meter_id, client=client) == "last":
        latest = max(rows, key=lambda row: row.end_time)
        return _whole_number(latest.aggregated_value, what=what)
    return sum(_whole_number(row.aggregated_value, what=what) for row in rows)


def _local_estimate(
    *,
    subscription_data: Mapping[str, Any],
    customer_id: str,
    quantities: Mapping[str, int] | None,
    client,
    reachable: bool,
) -> tuple[list[LineItem], datetime, datetime]:
    period = subscription_current_period(subscription_data)
    if period is None:
        raise ValueError("the subscription has no current period")
    start, end = period
    items = []
    for item in subscription_items(subscription_data):
        price_id = item_price_id(item)
        spec = _price_spec(price_id=price_id, client=client, reachable=reachable)
        if spec.usage_type == "licensed":
            quantity = item.get("quantity")
            quantity = 1 if quantity is None else int(quantity)
        elif quantities is not None:
            quantity = int(quantities.get(price_id, 0))
        elif not reachable:
            raise _StripeUnavailable("metered usage comes from Stripe, which is unreachable")
        elif spec.meter is None:
            quantity = 0
        else:
            try:
                quantity = meter_usage_from_stripe(
                    client=client,
                    meter_id=spec.meter,
                    customer_id=customer_id,
                    start=start,
                    end=end,
                )
            except stripe.StripeError as exc:
                raise _StripeUnavailable(describe_stripe_error(exc)) from exc
        items.append((spec, quantity))
    lines = estimate_current_period(items=items, period_start=start, period_end=end)
    return lines, start, end


def invoice_preview(
    *,
    account: Account,
    quantities: Mapping[str, int] | None = None,
    client=None,
) -> InvoicePreview:
    """Stripe's preview of the account's current-period invoice and the local estimate.

    ``quantities`` maps Stripe price ids of metered items to their usage so far
    (from the usage ledger); when ``None`` the usage comes from Stripe's meter event
    summaries. Never raises for Stripe failures: they end up in ``stripe_error``
    (Stripe's side) or ``local_error`` (the estimate needed Stripe and could not
    get it); the estimate still uses the dj-stripe mirror when it can.
    """
    subscription = live_subscription_for_account(account=account)
    if subscription is None:
        return InvoicePreview(
            account_id=account.pk, customer_id=live_customer_id_for_account(account=account)
        )
    client = client or stripe_client(max_network_retries=1)
    customer_id = subscription.customer_id
    subscription_data: Mapping[str, Any] = subscription.data

    stripe_error = None
    reachable = True
    stripe_total = currency = None
    stripe_lines: tuple[PreviewLine, ...] = ()
    complete = True
    try:
        # Live, so a period that rolled over since the mirror was synced is seen.
        subscription_data = client.v1.subscriptions.retrieve(subscription.id).to_dict()
        invoice = client.v1.invoices.create_preview(
            {"customer": customer_id, "subscription": subscription.id}
        ).to_dict()
        stripe_total, currency = int(invoice["total"]), invoice["currency"]
        stripe_lines, complete = _stripe_lines(invoice)
    except stripe.APIConnectionError as exc:
        stripe_error, reachable = describe_stripe_error(exc), False
    except stripe.StripeError as exc:
        stripe_error = describe_stripe_error(exc)

    local_error = None
    local_total = None
    local_lines: tuple[PreviewLine, ...] = ()
    period_start = period_end = None
    try:
        lines, period_start, period_end = _local_estimate(
            subscription_data=subscription_data,
            customer_id=customer_id,
            quantities=quantities,
            client=client,
            reachable=reachable,
        )
        local_total = lines_total(lines=lines)
        local_lines = tuple(_local_line(line) for line in lines)
        currency = currency or (lines[0].currency if lines else subscription_data.get("currency"))
    except _StripeUnavailable as exc:
        local_error = f"The local estimate needs Stripe: {exc}"
    except (ValueError, TypeError) as exc:
        local_error = f"The local estimate failed: {exc}"
    if period_start is None:
        period = subscription_current_period(subscription_data)
        period_start, period_end = period if period else (None, None)

    return InvoicePreview(
        account_id=account.pk,
        customer_id=customer_id,
        subscription_id=subscription.id,
        currency=currency or subscription_data.get("currency"),
        period_start=period_start,
        period_end=period_end,
        stripe_total=stripe_total,
        stripe_lines=stripe_lines,
        stripe_lines_complete=complete,
        local_total=local_total,
        local_lines=local_lines,
        usage_source=USAGE_GIVEN if quantities is not None else USAGE_STRIPE_SUMMARIES,
        cancel_at_period_end=bool(subscription_data.get("cancel_at_period_end")),
        stripe_error=stripe_error,
        local_error=local_error,
    )
