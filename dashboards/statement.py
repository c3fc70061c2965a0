"""The usage statement of an invoice or of the open period: a printable page and a CSV.

Every line of the invoice (metered ones with the pricing engine's rows per tier, their
daily usage read through the rollups and the ``UsageReport`` identifiers that carried the
usage to Stripe), and totals that reconcile to Stripe's invoice to the cent: the lines'
amounts less the invoice's discounts equal Stripe's total (``reconciles``). The open
period's statement is the same for the usage so far (no Stripe invoice yet: nothing to
reconcile to). A viewer of an account whose operator hides amounts from viewers
(``BILLING_VIEWERS_SEE_AMOUNTS=false``) gets a 403 for the page and the CSV.
"""

import csv
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.mirror.invoices import account_invoice
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Account, Meter
from billing.money import currency_exponent
from billing.pricing import Breakdown, breakdown
from dashboards.access import account_for_request, render_not_found, require_amounts
from dashboards.invoices import invoice_rows
from usage.selectors.drilldown import day_buckets, period_reports
from usage.selectors.rollups import Bucket
from usage.selectors.summaries import period_summary


@dataclass(frozen=True)
class StatementLine:
    name: str
    kind: str  # "metered", "base_fee", "proration"
    meter: Meter | None
    quantity: int
    amount: int  # minor units
    period_start: datetime | None
    period_end: datetime | None
    breakdown: Breakdown | None
    days: tuple[Bucket, ...] = ()
    reports: tuple = ()  # usage.selectors.drilldown.ReportRef
    line_id: str = ""  # Stripe's invoice line id (invoice statements)

    @property
    def breakdown_matches(self) -> bool:
        return self.breakdown is not None and self.breakdown.amount == self.amount


@dataclass(frozen=True)
class Statement:
    account: Account
    title: str  # "Invoice 0042-0003", "Current period so far"
    slug: str  # for the CSV's file name
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    lines: tuple[StatementLine, ...]
    discount: int
    stripe_total: int | None  # None: no invoice yet (the open period)
    invoice_id: str = ""
    status: str = ""

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal - self.discount

    @property
    def reconciles(self) -> bool:
        """The statement's total is Stripe's invoice total, to the cent."""
        return self.stripe_total is not None and self.total == self.stripe_total


def _usage(account: Account, meter: Meter, start, end) -> tuple[tuple, tuple]:
    days = day_buckets(account_id=account.pk, meter=meter, start=start, end=end)
    reports = period_reports(account_id=account.pk, meter=meter, start=start, end=end)
    return tuple(days), tuple(reports)


def invoice_statement(*, account: Account, invoice_id: str) -> Statement | None:
    """The statement of one of the account's invoices, else None."""
    invoice = account_invoice(account=account, invoice_id=invoice_id)
    if invoice is None:
        return None
    [row] = invoice_rows([invoice])
    lines = []
    for line_row in row.lines:
        line = line_row.line
        days, reports = (), ()
        if line.is_metered and line.meter and line.period_start and line.period_end:
            days, reports = _usage(account, line.meter, line.period_start, line.period_end)
        lines.append(
            StatementLine(
                name=line_row.name,
                kind=line.kind,
                meter=line.meter,
                quantity=line.quantity,
                amount=line.amount,
                period_start=line.period_start,
                period_end=line.period_end,
                breakdown=line_row.breakdown,
                days=days,
                reports=reports,
                line_id=line.id,
            )
        )
    start, end = invoice.service_period
    return Statement(
        account=account, title=f"Invoice {invoice.number}", slug=invoice.number,
        currency=invoice.currency, period_start=start, period_end=end, lines=tuple(lines),
        discount=invoice.discount_total, stripe_total=invoice.total, invoice_id=invoice.id,
        status=invoice.status,
    )  # fmt: skip


def open_period_statement(*, account: Account, now: datetime | None = None) -> Statement | None:
    """The usage of the open period so far, priced by the engine; None without a
    subscription."""
    state = subscription_state_for_account(account=account)
    if state is None:
        return None
    summary = period_summary(account=account, state=state, offset=0, now=now)
    start, end = summary.period_start, summary.period_end
    lines = []
    for meter_line in summary.lines:
        meter = meter_line.meter
        days, reports = _usage(account, meter, start, end)
        lines.append(
            StatementLine(
                name=meter.display_name,
                kind="metered",
                meter=meter,
                quantity=meter_line.usage,
                amount=meter_line.cost_so_far,
                period_start=start,
                period_end=end,
                breakdown=breakdown(price=meter_line.item.spec, quantity=meter_line.usage),
                days=days,
                reports=reports,
            )
        )
    return Statement(
        account=account, title="Current period so far", slug=f"{start:%Y-%m-%d}-so-far",
        currency=summary.currency, period_start=start, period_end=end, lines=tuple(lines),
        discount=0, stripe_total=None,
    )  # fmt: skip


# -- CSV -----------------------------------------------------------------------------------
CSV_HEADER = ("record", "line", "detail", "quantity", "amount", "currency")


def _major(minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{part:0{exponent}d}" if exponent else f"{sign}{whole}"


def _tier_text(row) -> str:
    if row.kind == "tier":
        last = f"{row.last_unit}" if row.last_unit else "and up"
        return (
            f"tier {row.first_unit}-{last} at {row.unit_amount_decimal} + {row.flat_amount_decimal}"
        )
    if row.kind == "package":
        return f"packs of {row.package_size} at {row.unit_amount_decimal}"
    return f"every unit at {row.unit_amount_decimal}"


def statement_csv_rows(statement: Statement):
    """``record`` is line, tier (one pricing row: units and amount), day (UTC, usage),
    report (the identifier Stripe got, its value), then subtotal, discount, total and
    stripe_total. Amounts in the currency's major units ("4.69")."""
    cur = statement.currency
    for line in statement.lines:
        yield ("line", line.name, line.kind, line.quantity, _major(line.amount, cur), cur)
        for row in line.breakdown.rows if line.breakdown else ():
            yield ("tier", line.name, _tier_text(row), row.units, _major(row.amount, cur), cur)
        for day in line.days:
            yield ("day", line.name, f"{day.start:%Y-%m-%d}", day.value, "", cur)
        for report in line.reports:
            yield ("report", line.name, report.identifier, report.value, report.status, cur)
    yield ("subtotal", "", "", "", _major(statement.subtotal, cur), cur)
    yield ("discount", "", "", "", _major(-statement.discount, cur), cur)
    yield ("total", "", "", "", _major(statement.total, cur), cur)
    if statement.stripe_total is not None:
        yield ("stripe_total", "", "", "", _major(statement.stripe_total, cur), cur)


# -- views ---------------------------------------------------------------------------------
def _statement(request: HttpRequest, invoice_id: str | None) -> Statement:
    account = account_for_request(request)
    if account is None:
        raise Http404("no account")
    require_amounts(request, account)  # viewers, if the operator hides amounts from them
    if invoice_id is None:
        found = open_period_statement(account=account, now=timezone.now())
    else:
        found = invoice_statement(account=account, invoice_id=invoice_id)
    if found is None:
        raise Http404("That statement doesn't exist.")
    return found


def _respond(request: HttpRequest, statement: Statement, as_csv: bool) -> HttpResponse:
    if not as_csv:
        return render(request, "dashboards/statement.html", {"statement": statement})
    response = HttpResponse(content_type="text/csv")
    name = f"usage-statement-{statement.slug}.csv".replace("/", "-")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    writer.writerows(statement_csv_rows(statement))
    return response


@require_GET
@login_required
@render_not_found
def invoice_statement_view(request: HttpRequest, invoice_id: str) -> HttpResponse:
    return _respond(request, _statement(request, invoice_id), as_csv=False)


@require_GET
@login_required
@render_not_found
def invoice_statement_csv(request: HttpRequest, invoice_id: str) -> HttpResponse:
    return _respond(request, _statement(request, invoice_id), as_csv=True)


@require_GET
@login_required
@render_not_found
def open_statement_view(request: HttpRequest) -> HttpResponse:
    return _respond(request, _statement(request, None), as_csv=False)


@require_GET
@login_required
@render_not_found
def open_statement_csv(request: HttpRequest) -> HttpResponse:
    return _respond(request, _statement(request, None), as_csv=True)
