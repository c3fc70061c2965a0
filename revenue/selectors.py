"""Selectors: revenue lines from the mirrored invoices, usage weights from the
rollups, open-period accruals from the pricing engine, and the waterfall built on them.

Read-only, no network. Which invoices count:

- ``open``, ``paid`` and ``uncollectible`` invoices (finalized; an uncollectible
  invoice was still billed, its loss is bad debt, not less revenue);
- ``draft`` invoices are not billed yet and ``void`` invoices never were: both are
  left out entirely (a voided invoice disappears from the months it was in).

Invoices are the typed ones of ``billing.mirror.invoices``; how a line's amount is
netted of discounts and credit notes: :mod:`revenue.invoices`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils import timezone

from billing.mirror.customers import accounts_with_stripe_customer
from billing.mirror.invoices import Invoice, finalized_invoices
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Account, Meter
from billing.pricing import line_amount
from revenue.invoices import invoice_revenue_lines
from revenue.schedule import RevenueLine, service_days, utc_day
from revenue.waterfall import Accrual, MonthFigures, waterfall
from usage.selectors.rollups import rollup_buckets, rollup_value


@dataclass
class RevenueReport:
    by_currency: dict[str, list[MonthFigures]]
    warnings: list[str] = field(default_factory=list)
    account: Account | None = None
    as_of: datetime | None = None

    @property
    def currencies(self) -> list[str]:
        return sorted(self.by_currency)

    def month(self, currency: str, month: str) -> MonthFigures | None:
        for fig in self.by_currency.get(currency, []):
            if fig.month == month:
                return fig
        return None

    def previous(self, currency: str, month: str) -> MonthFigures | None:
        rows = [f for f in self.by_currency.get(currency, []) if f.month < month]
        return rows[-1] if rows else None

    def figures_for(self, currency: str, month: str) -> MonthFigures:
        """The month's figures; a month without activity carries the balances over."""
        found = self.month(currency, month)
        if found is not None:
            return found
        before = self.previous(currency, month)
        return MonthFigures(
            currency=currency,
            month=month,
            deferred_end=before.deferred_end if before else 0,
            unbilled_end=before.unbilled_end if before else 0,
        )


def usage_by_day(
    *, account_id: int, meter: Meter, start: datetime, end: datetime
) -> dict[date, int] | None:
    """Usage per UTC day in ``[start, end)``, or None for a ``last`` meter (a level
    such as seats, not consumption: recognized ratably)."""
    if meter.aggregation == Meter.Aggregation.LAST:
        return None
    buckets = rollup_buckets(account_id=account_id, meter=meter, start=start, end=end, group="day")
    return {utc_day(b.start): b.value for b in buckets}


def _invoiced_periods(invoice: Invoice) -> set[tuple[str, int]]:
    """(subscription item, period start) pairs whose usage this invoice billed: only an
    invoice issued once the period was over bills its usage (Stripe may put a zero
    metered line for the new period on the first invoice)."""
    billed = invoice.billed_at
    return {
        (line.subscription_item, int(line.period_start.timestamp()))
        for line in invoice.lines
        if line.subscription_item
        and line.period_start
        and line.period_end
        and billed is not None
        and line.period_end <= billed
    }


def revenue_lines(
    *, account: Account | None = None, currency: str | None = None
) -> tuple[list[RevenueLine], list[str], set[tuple[str, int]]]:
    """Revenue lines of finalized invoices; also warnings, and the (subscription item,
    period start) pairs already invoiced (so open-period accruals skip them)."""
    warnings: list[str] = []
    invoiced: set[tuple[str, int]] = set()
    result: list[RevenueLine] = []
    for invoice in finalized_invoices(account=account, currency=currency):
        if not invoice.lines_complete:
            warnings.append(
                f"invoice {invoice.id}: only {len(invoice.lines)} of "
                f"{invoice.lines_expected or 'more'} lines are mirrored; sync it again"
            )
        invoiced |= _invoiced_periods(invoice)

        def classify(line, start: datetime, end: datetime, account_id=invoice.account_id):
            if not line.is_metered:
                return "licensed", None
            if line.meter is None or account_id is None:
                return "metered", None
            return "metered", usage_by_day(
                account_id=account_id, meter=line.meter, start=start, end=end
            )

        result.extend(
            invoice_revenue_lines(invoice, account_id=invoice.account_id, classify=classify)
        )
    return result, warnings, invoiced


def open_period_accruals(
    *,
    account: Account | None = None,
    currency: str | None = None,
    invoiced: set[tuple[str, int]] = frozenset(),
    now: datetime | None = None,
) -> list[Accrual]:
    """Usage consumed so far in each account's open period (not invoiced yet), priced
    by the pricing engine and spread over the days it was consumed."""
    now = now or timezone.now()
    accounts = [account] if account is not None else accounts_with_stripe_customer().order_by("pk")
    accruals = []
    for acct in accounts:
        state = subscription_state_for_account(account=acct)
        if state is None or (currency and state.currency != currency):
            continue
        start = state.period_start
        consumed_to = min(now, state.period_end)
        if consumed_to <= start:
            continue
        for item in state.metered_items:
            if (item.item_id, int(start.timestamp())) in invoiced:
                continue
            usage = rollup_value(
                account_id=acct.pk, meter=item.meter, start=start, end=state.period_end
            )
            amount = line_amount(price=item.spec, quantity=usage)
            if amount == 0:
                continue
            days = service_days(start, consumed_to)
            per_day = usage_by_day(
                account_id=acct.pk, meter=item.meter, start=start, end=consumed_to
            )
            weights = days
            if per_day and sum(per_day.get(d, 0) for d, _ in days) > 0:
                weights = [(d, per_day.get(d, 0)) for d, _ in days]
            accruals.append(
                Accrual(
                    currency=item.spec.currency,
                    amount=amount,
                    weights=tuple(weights),
                    account_id=acct.pk,
                    description=f"{acct} {item.nickname}: {usage:,} so far",
                )
            )
    return accruals


def revenue_report(
    *, account: Account | None = None, currency: str | None = None, now: datetime | None = None
) -> RevenueReport:
    """The waterfall for all accounts (or one), every currency (or one)."""
    now = now or timezone.now()
    currency = currency.lower() if currency else None
    lines, warnings, invoiced = revenue_lines(account=account, currency=currency)
    accruals = open_period_accruals(account=account, currency=currency, invoiced=invoiced, now=now)
    return RevenueReport(
        by_currency=waterfall(lines=lines, accruals=accruals, as_of=utc_day(now)),
        warnings=warnings,
        account=account,
        as_of=now,
    )
