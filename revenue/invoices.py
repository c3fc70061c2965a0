"""Stripe invoices (JSON, as mirrored by dj-stripe) to revenue lines: pure, no database.

A line's recognized amount is its ``amount`` minus its own ``discount_amounts``.
Invoice-level discounts that the lines do not carry (``total_discount_amounts`` beyond
the lines' own) and credit notes (``pre_payment_credit_notes_amount`` +
``post_payment_credit_notes_amount``: dj-stripe 2.11 mirrors no credit notes and the
emulator issues none, so only these totals are known) are spread over the invoice's
lines in proportion to their net amounts, with the same rounding rule as the days
(floor, remainder on the last line). Taxes are never part of a line's amount.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime

from revenue.schedule import RevenueLine, spread_over_lines, utc_day

# (line, period start, period end) -> (kind "licensed"|"metered", usage per day or None)
Classifier = Callable[[dict, datetime, datetime], tuple[str, Mapping[date, int] | None]]

FINALIZED_STATUSES = ("open", "paid", "uncollectible")


def ts(value) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def billed_at(data: Mapping) -> int:
    """When the invoice was finalized (billed), as a Unix timestamp."""
    transitions = data.get("status_transitions") or {}
    return int(
        transitions.get("finalized_at") or data.get("effective_at") or data.get("created") or 0
    )


def billed_on(data: Mapping) -> date:
    """The UTC date the invoice was finalized (billed)."""
    return utc_day(ts(billed_at(data)))


def line_price_id(line: Mapping) -> str | None:
    pricing = line.get("pricing") or {}
    details = pricing.get("price_details") or {}
    price = details.get("price") or line.get("price")
    if isinstance(price, dict):
        return price.get("id")
    return price


def line_subscription_item(line: Mapping) -> str | None:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {}
    item = details.get("subscription_item") or line.get("subscription_item")
    return item.get("id") if isinstance(item, dict) else item


def line_discount(line: Mapping) -> int:
    return sum(int(d.get("amount") or 0) for d in line.get("discount_amounts") or [])


def _ratable(line: dict, start: datetime, end: datetime):
    return "licensed", None


def invoice_revenue_lines(
    data: Mapping,
    lines: list[dict],
    *,
    account_id: int | None = None,
    classify: Classifier = _ratable,
) -> list[RevenueLine]:
    """The revenue lines of one finalized invoice; their amounts add up to the invoice's
    line amounts minus its discounts and credit notes."""
    if not lines:
        return []
    currency = (data.get("currency") or lines[0].get("currency") or "").lower()
    net = [int(line.get("amount") or 0) - line_discount(line) for line in lines]
    invoice_discount = sum(
        int(d.get("amount") or 0) for d in data.get("total_discount_amounts") or []
    )
    unassigned = invoice_discount - sum(line_discount(line) for line in lines)
    credited = int(data.get("pre_payment_credit_notes_amount") or 0) + int(
        data.get("post_payment_credit_notes_amount") or 0
    )
    # One reduction after the other, each over what the lines still carry, so that no
    # line is reduced below zero when the reductions fit in the invoice.
    for reduction in (unassigned, credited):
        if reduction > 0 and any(n > 0 for n in net):
            net = [
                n + share for n, share in zip(net, spread_over_lines(-reduction, net), strict=True)
            ]
    finalized = billed_on(data)
    result = []
    for line, line_net in zip(lines, net, strict=True):
        period = line.get("period") or {}
        start = ts(period.get("start") or data.get("period_start") or data.get("created"))
        end = ts(period.get("end") or int(start.timestamp()))
        kind, usage = classify(line, start, end)
        gross = int(line.get("amount") or 0)
        result.append(
            RevenueLine(
                invoice_id=str(data.get("id") or ""),
                line_id=str(line.get("id") or ""),
                currency=currency,
                amount=line_net,
                period_start=start,
                period_end=end,
                billed_on=finalized,
                account_id=account_id,
                kind=kind,
                gross=gross,
                discount=line_net - gross,
                description=str(line.get("description") or ""),
                usage_by_day=usage,
            )
        )
    return result
