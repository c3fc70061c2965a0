"""Selectors: revenue lines from the mirrored invoices, usage weights from the
rollups, open-period accruals from the pricing engine, and the waterfall built on them.

Read-only, no network. Which invoices count:

- ``open``, ``paid`` and ``uncollectible`` invoices (finalized; an uncollectible
  invoice was still billed, its loss is bad debt, not less revenue);
- ``draft`` invoices are not billed yet and ``void`` invoices never were: both are
  left out entirely (a voided invoice disappears from the months it was in).

Invoices are the typed ones of ``billing.mirror.invoices``; how a line's amount is
netted of discounts, billing credits and credit notes: :mod:`revenue.invoices`.

Billing credits (:mod:`revenue.credits`): a paid grant's purchase invoice
(``CreditGrant.purchase_invoice_id``) is not an ordinary revenue line but credits sold;
each credit on a line (``InvoiceLine.credit_amounts``) is resolved to its grant by its
credit balance transaction (by id, else the ``credits_applied`` debit naming the invoice
line); ``credits_expired`` / ``credits_voided`` debits are expiries, and
``credits_application_invoice_voided`` credits take reinstated credits off the
application they reverse. ``revenue_lines`` returns the credit lines with the others.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils import timezone

from billing.mirror.customers import accounts_with_stripe_customer
from billing.mirror.invoices import Invoice, finalized_invoices
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Account, Meter
from billing.models_credits import CreditBalanceTransaction, CreditGrant
from billing.pricing import line_amount
from revenue.credits import Application, Expiry, Grant, Sale, credit_revenue_lines
from revenue.invoices import billed_on, invoice_revenue_lines
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
            prepaid_credits_end=before.prepaid_credits_end if before else 0,
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


@dataclass
class _CreditRecords:
    """The credit grants in scope and their balance transactions, as revenue needs them."""

    grants: dict[str, Grant]
    by_purchase_invoice: dict[str, list[str]]  # purchase invoice id -> grant keys
    by_transaction: dict[str, str]  # credit balance transaction stripe id -> grant key
    by_invoice_line: dict[tuple[str, str], list[str]]  # credits_applied (invoice, line)
    reinstated: dict[tuple[str, str, str], int]  # (invoice, line, grant) -> credits
    expiries: list[Expiry]


APPLIED, EXPIRED, VOIDED = "credits_applied", "credits_expired", "credits_voided"
REINSTATED = "credits_application_invoice_voided"


def _credit_records(*, account: Account | None, currency: str | None) -> _CreditRecords:
    grants_qs = CreditGrant.objects.all()
    txns = CreditBalanceTransaction.objects.filter(
        kind__in=(APPLIED, EXPIRED, VOIDED, REINSTATED)
    ).order_by("effective_at", "pk")
    if account is not None:
        grants_qs = grants_qs.filter(account=account)
        txns = txns.filter(grant__account=account)
    if currency:
        grants_qs = grants_qs.filter(currency=currency)
        txns = txns.filter(grant__currency=currency)
    records = _CreditRecords({}, defaultdict(list), {}, defaultdict(list), defaultdict(int), [])
    for g in grants_qs:
        key = str(g.pk)
        records.grants[key] = Grant(
            key=key,
            category=g.category,
            currency=g.currency.lower(),
            amount=g.amount,
            purchase_amount=g.purchase_amount,
            purchase_invoice_id=g.purchase_invoice_id,
            account_id=g.account_id,
            name=g.name,
        )
        if g.category == CreditGrant.Category.PAID and g.purchase_invoice_id:
            records.by_purchase_invoice[g.purchase_invoice_id].append(key)
    for t in txns:
        key = str(t.grant_id)
        records.by_transaction[t.stripe_id] = key
        if t.kind == APPLIED:
            records.by_invoice_line[(t.invoice_id, t.invoice_line_item_id)].append(key)
        elif t.kind == REINSTATED:
            records.reinstated[(t.invoice_id, t.invoice_line_item_id, key)] += t.amount
        else:
            records.expiries.append(Expiry(key, t.amount, t.effective_at, t.stripe_id))
    return records


def _credit_applications(
    invoice: Invoice, lines: list[RevenueLine], records: _CreditRecords
) -> list[Application]:
    """The credits on the invoice's lines, each resolved to its grant; what a
    reinstatement (the invoice voided) gave back is taken off."""
    applications = []
    for line, revenue_line in zip(invoice.lines, lines, strict=True):
        for transaction_id, amount in line.credit_amounts:
            grant = records.by_transaction.get(transaction_id, "")
            if not grant:
                candidates = records.by_invoice_line.get((invoice.id, line.id), [])
                grant = candidates[0] if len(set(candidates)) == 1 else ""
            back = records.reinstated.get((invoice.id, line.id, grant), 0)
            taken = min(back, amount)
            if taken:
                records.reinstated[(invoice.id, line.id, grant)] -= taken
            applications.append(
                Application(
                    grant=grant,
                    amount=amount - taken,
                    line=revenue_line,
                    applied_at=invoice.billed_at or revenue_line.period_end,
                    transaction_id=transaction_id,
                )
            )
    return applications


def _credit_sales(invoice: Invoice, records: _CreditRecords) -> tuple[list[Sale], list[str]]:
    keys = records.by_purchase_invoice[invoice.id]
    sales = [Sale(grant=key, invoice_id=invoice.id, billed_on=billed_on(invoice)) for key in keys]
    bought = sum(records.grants[key].price for key in keys)
    invoiced = sum(line.amount - line.discount for line in invoice.lines)
    invoiced -= invoice.discount_total - sum(line.discount for line in invoice.lines)
    warnings = []
    if invoiced != bought:
        warnings.append(
            f"invoice {invoice.id}: bills {invoiced} for credits bought for {bought}; "
            "the purchase amount is what is counted as credits sold"
        )
    if invoice.credit_notes_total:
        warnings.append(
            f"invoice {invoice.id}: a credit note of {invoice.credit_notes_total} on a "
            "credit purchase is not taken off the prepaid credits"
        )
    return sales, warnings


def revenue_lines(
    *, account: Account | None = None, currency: str | None = None
) -> tuple[list[RevenueLine], list[str], set[tuple[str, int]]]:
    """Revenue lines of finalized invoices, and the credit lines of the grants (kinds
    of :mod:`revenue.credits`); also warnings, and the (subscription item, period start)
    pairs already invoiced (so open-period accruals skip them)."""
    warnings: list[str] = []
    invoiced: set[tuple[str, int]] = set()
    result: list[RevenueLine] = []
    records = _credit_records(account=account, currency=currency)
    sales: list[Sale] = []
    applications: list[Application] = []
    for invoice in finalized_invoices(account=account, currency=currency):
        if invoice.id in records.by_purchase_invoice:
            invoice_sales, sale_warnings = _credit_sales(invoice, records)
            sales += invoice_sales
            warnings += sale_warnings
            continue
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

        lines = invoice_revenue_lines(invoice, account_id=invoice.account_id, classify=classify)
        result.extend(lines)
        if invoice.credited:
            applications += _credit_applications(invoice, lines, records)
    credit_lines, credit_warnings = credit_revenue_lines(
        grants=records.grants, sales=sales, applications=applications, expiries=records.expiries
    )
    return result + credit_lines, warnings + credit_warnings, invoiced


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
    by_currency = waterfall(lines=lines, accruals=accruals, as_of=utc_day(now))
    for code, rows in by_currency.items():
        # Paid credits consumed by usage before the credits' purchase invoice: the
        # prepaid balance runs below zero until the purchase is finalized.
        short = [fig.month for fig in rows if fig.prepaid_credits_end < 0]
        if short:
            warnings.append(
                f"{code.upper()}: prepaid credits balance below zero at the end of "
                f"{', '.join(short)} (credits consumed before their purchase was invoiced)"
            )
    return RevenueReport(
        by_currency=by_currency,
        warnings=warnings,
        account=account,
        as_of=now,
    )
