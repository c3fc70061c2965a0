"""The read API's answers (``GET /api/v1/customers/{customer}/usage|invoices|alerts``):
plain JSON-ready dicts in the shapes ``docs/openapi.yaml`` documents.

Every figure comes from the engine the dashboard reads, so the API and the dashboard
agree to the unit and the cent: the period summary (usage, allowance, cost, projection),
the budget statuses, the mirrored invoices and the alert deliveries. Amounts are
integers in the currency's minor unit next to a ``currency``; times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

from billing.mirror.customers import account_for_customer_id
from billing.mirror.invoices import Invoice, account_invoices
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Account
from usage.event_validation import storable
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.selectors.budgets import BudgetStatus, budget_statuses_from_summaries
from usage.selectors.summaries import period_summary
from usage.selectors.summary_lines import MeterLine, PeriodSummary

MAX_CUSTOMER_ID = 255
# Alert kinds whose ``observed`` and ``threshold`` are money (minor units), not units.
MONEY_RULE_KINDS = (*AlertRule.SPEND_KINDS, *AlertRule.CREDIT_KINDS)


def read_api_account(*, customer: str) -> Account | None:
    """The account whose Stripe customer id is ``customer``; None for an unknown id (and
    for one no database could hold: too long, NUL, a lone surrogate)."""
    if not customer or len(customer) > MAX_CUSTOMER_ID or not storable(customer):
        return None
    return account_for_customer_id(customer_id=customer)


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _range(values) -> dict:
    low, expected, high = values
    return {"low": low, "expected": expected, "high": high}


def _budget(status: BudgetStatus | None) -> dict | None:
    if status is None:
        return None
    return {
        "kind": status.budget.kind,
        "limit": status.limit,
        "used": status.used,
        "currency": status.currency or None,
        "percent": status.percent,
        "warn_levels": sorted({int(level) for level in status.budget.warn_levels or ()}),
        "levels_reached": list(status.levels_reached),
        "hard_cap": status.budget.hard_cap,
        "cap_reached": status.cap_reached,
        "resets_at": _time(status.resets_at),
    }


def _meter(line: MeterLine, budget: BudgetStatus | None) -> dict:
    projection = line.projection
    return {
        "event_name": line.meter.event_name,
        "display_name": line.meter.display_name,
        "unit_label": line.meter.unit_label,
        "aggregation": line.meter.aggregation,
        "usage": line.usage,
        "allowance": line.allowance,
        "share_used": None if line.share_used is None else str(line.share_used),
        "cost": line.cost_so_far,
        "projection": {
            "usage": _range((projection.low, projection.projected, projection.high)),
            "cost": _range(line.projected_cost),
            "method": projection.method,
        },
        "budget": _budget(budget),
    }


def _summary(summary: PeriodSummary, statuses: list[BudgetStatus]) -> dict:
    units = {s.budget.meter_id: s for s in statuses if s.budget.kind == Budget.Kind.UNITS}
    spend = next((s for s in statuses if s.budget.kind == Budget.Kind.SPEND), None)
    return {
        "period_start": _time(summary.period_start),
        "period_end": _time(summary.period_end),
        "currency": summary.currency,
        "subscription": {
            "id": summary.state.subscription_id,
            "status": summary.state.status,
            "cancel_at_period_end": summary.state.cancel_at_period_end,
        },
        "base_fee": summary.base_fee,
        "usage_cost": summary.usage_cost_so_far,
        "projected_usage_cost": _range(summary.projected_usage_cost),
        "estimated_invoice": _range(summary.estimated_invoice),
        "meters": [_meter(line, units.get(line.meter.pk)) for line in summary.lines],
        "spend_budget": _budget(spend),
    }


def read_api_usage(*, account: Account, customer: str, now: datetime | None = None) -> dict:
    """The current period per meter: usage, allowance, cost so far, projection (units
    and cost, low/expected/high), budget status; the period, base fee, estimated
    invoice and currency. Without a live subscription or an open period: the same keys,
    with nulls and no meters."""
    now = now or timezone.now()
    answer = {
        "customer": customer,
        "account_status": account.status,
        "as_of": _time(now),
        "period_start": None,
        "period_end": None,
        "currency": account.currency,
        "subscription": None,
        "base_fee": 0,
        "usage_cost": 0,
        "projected_usage_cost": None,
        "estimated_invoice": None,
        "meters": [],
        "spend_budget": None,
    }
    state = subscription_state_for_account(account=account)
    if state is None:
        return answer
    summary = period_summary(account=account, state=state, offset=0, now=now)
    if summary.closed:  # the mirror has not heard of the next period yet
        return answer
    statuses = budget_statuses_from_summaries(summaries={account.pk: summary})[account.pk]
    return {**answer, **_summary(summary, statuses)}


def _invoice(invoice: Invoice) -> dict:
    start, end = invoice.service_period
    return {
        "id": invoice.id,
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "total": invoice.total,
        "amount_due": invoice.amount_due,
        "amount_remaining": invoice.amount_remaining,
        "created": _time(invoice.created),
        "due_date": _time(invoice.due_date),
        "period_start": _time(start),
        "period_end": _time(end),
        "hosted_invoice_url": invoice.hosted_invoice_url or None,
    }


def _page(rows: list, *, limit: int, offset: int) -> dict:
    """``rows`` holds the page and, when there is more, one row beyond it."""
    has_more = len(rows) > limit
    return {
        "data": rows[:limit],
        "has_more": has_more,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if has_more else None,
    }


def read_api_invoices(*, account: Account, customer: str, limit: int, offset: int) -> dict:
    """The account's mirrored invoices, newest first, ``limit`` from ``offset`` (and one
    more, read to tell whether there is a next page), paged by the database."""
    invoices = account_invoices(account=account, limit=limit + 1, offset=offset)
    return {
        "customer": customer,
        **_page([_invoice(i) for i in invoices], limit=limit, offset=offset),
    }


def _alert_kind(delivery: AlertDelivery) -> str | None:
    if delivery.rule is not None:
        return delivery.rule.kind
    if delivery.budget is not None:
        return f"budget_{delivery.budget.kind}"
    return None  # its rule was deleted, or a raised budget resolved it


def _alert_currency(delivery: AlertDelivery, kind: str | None, account: Account) -> str | None:
    if kind in MONEY_RULE_KINDS:
        return delivery.rule.currency or account.currency
    if kind == "budget_spend":
        return delivery.budget.currency
    return None


def _alert(delivery: AlertDelivery, *, account: Account, now: datetime) -> dict:
    kind = _alert_kind(delivery)
    meter = (delivery.rule.meter if delivery.rule else None) or (
        delivery.budget.meter if delivery.budget else None
    )
    currency = _alert_currency(delivery, kind, account)
    return {
        "id": delivery.pk,
        "sent_at": _time(delivery.sent_at),
        "summary": delivery.summary,
        "kind": kind,
        "event_name": meter.event_name if meter else None,
        "level": delivery.level,
        "observed": delivery.observed,
        "threshold": delivery.threshold,
        "currency": currency,
        "period_start": _time(delivery.period_start),
        "period_end": _time(delivery.period_end),
        "current_period": delivery.period_start <= now < delivery.period_end,
        "resolved_at": _time(delivery.resolved_at),
    }


def read_api_alerts(
    *, account: Account, customer: str, limit: int, offset: int, now: datetime | None = None
) -> dict:
    """The alerts sent to the account (this period and earlier), newest first; a
    delivery whose e-mail has not gone out yet is not listed."""
    now = now or timezone.now()
    rows = (
        AlertDelivery.objects.filter(account=account, sent_at__isnull=False)
        .select_related("rule__meter", "budget__meter")
        .order_by("-sent_at", "-pk")[offset : offset + limit + 1]
    )
    alerts = [_alert(d, account=account, now=now) for d in rows]
    return {"customer": customer, **_page(alerts, limit=limit, offset=offset)}
