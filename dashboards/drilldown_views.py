"""Views: an invoice line's usage, down to the raw events of one hour (permalinks).

``/dashboard/invoices/<invoice>/lines/<line>/`` (the line's days),
``.../days/<YYYY-MM-DD>/`` (that day's hours), ``.../hours/<YYYY-MM-DDTHH>/?after=``
(one keyset page of that hour's events). The account is the signed-in user's (or staff's
``?account=``, :func:`dashboards.access.account_for_request`); another account's invoice
or line is a 404. A viewer of an account whose operator hides amounts from viewers
(``BILLING_VIEWERS_SEE_AMOUNTS=false``) gets a 403: a line's page states its amount.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.mirror.invoices import Invoice, InvoiceLine, account_invoice
from billing.models import Account
from dashboards.access import account_for_request, render_not_found, require_amounts
from dashboards.disputes import dispute_context
from dashboards.invoices import invoice_rows
from dashboards.templatetags.parity import line_parity
from usage.selectors import drilldown
from usage.selectors.drilldown import DAY, HOUR


@dataclass(frozen=True)
class LineContext:
    account: Account
    invoice: Invoice
    line: InvoiceLine
    start: datetime
    end: datetime


def line_context(request: HttpRequest, *, invoice_id: str, line_id: str) -> LineContext:
    """The account's invoice and its metered line with a period, else a 404."""
    account = account_for_request(request)
    require_amounts(request, account)  # viewers, if the operator hides amounts from them
    invoice = account_invoice(account=account, invoice_id=invoice_id) if account else None
    line = next((x for x in invoice.lines if x.id == line_id), None) if invoice else None
    if line is None or not line.is_metered or line.meter is None:
        raise Http404("That invoice line doesn't exist.")
    if not (line.period_start and line.period_end):
        raise Http404("That invoice line has no period.")
    return LineContext(account, invoice, line, line.period_start, line.period_end)


def _day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise Http404("That day doesn't exist.") from exc


def _hour(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError as exc:
        raise Http404("That hour doesn't exist.") from exc


def _base(ctx: LineContext) -> dict:
    return {"account": ctx.account, "invoice": ctx.invoice, "line": ctx.line,
            "meter": ctx.line.meter, "start": ctx.start, "end": ctx.end}  # fmt: skip


@require_GET
@login_required
@render_not_found
def line_days(request: HttpRequest, invoice_id: str, line_id: str) -> HttpResponse:
    return line_page(request, line_context(request, invoice_id=invoice_id, line_id=line_id))


def line_page(request: HttpRequest, ctx: LineContext, *, dispute_form=None) -> HttpResponse:
    """The line's days, its parity and its disputes (``dispute_form``: one with errors)."""
    meter, account_id = ctx.line.meter, ctx.account.pk
    days = drilldown.day_buckets(account_id=account_id, meter=meter, start=ctx.start, end=ctx.end)
    ledger = drilldown.range_total(account_id=account_id, meter=meter, start=ctx.start, end=ctx.end)
    [row] = invoice_rows([ctx.invoice])
    line_row = next((r for r in row.lines if r.line.id == ctx.line.id), None)
    parity = line_parity(ctx.account, row, line_row) if line_row else None
    return render(
        request,
        "dashboards/drilldown_line.html",
        _base(ctx)
        | {
            "days": [(b, b.start.strftime("%Y-%m-%d")) for b in days],
            "ledger_total": ledger,
            "matches": ledger == ctx.line.quantity,
            "parity": parity,
        }
        | dispute_context(request, ctx, form=dispute_form),
    )


@require_GET
@login_required
@render_not_found
def day_hours(request: HttpRequest, invoice_id: str, line_id: str, day: str) -> HttpResponse:
    ctx = line_context(request, invoice_id=invoice_id, line_id=line_id)
    span = drilldown.clip(start=_day(day), end=_day(day) + DAY, lo=ctx.start, hi=ctx.end)
    if span is None:
        raise Http404("That day is outside the line's period.")
    meter, account_id = ctx.line.meter, ctx.account.pk
    hours = drilldown.hour_buckets(account_id=account_id, meter=meter, start=span[0], end=span[1])
    total = drilldown.range_total(account_id=account_id, meter=meter, start=span[0], end=span[1])
    return render(
        request,
        "dashboards/drilldown_day.html",
        _base(ctx)
        | {
            "day": _day(day),
            "hours": [(b, b.start.strftime("%Y-%m-%dT%H")) for b in hours],
            "day_total": total,
        },
    )


@require_GET
@login_required
@render_not_found
def hour_events(request: HttpRequest, invoice_id: str, line_id: str, hour: str) -> HttpResponse:
    ctx = line_context(request, invoice_id=invoice_id, line_id=line_id)
    span = drilldown.clip(start=_hour(hour), end=_hour(hour) + HOUR, lo=ctx.start, hi=ctx.end)
    if span is None:
        raise Http404("That hour is outside the line's period.")
    after = None
    if request.GET.get("after"):
        after = drilldown.parse_cursor(request.GET["after"])
        if after is None:
            raise Http404("That page doesn't exist.")
    meter, account_id = ctx.line.meter, ctx.account.pk
    page = drilldown.hour_events(
        account_id=account_id, meter=meter, start=span[0], end=span[1], after=after
    )
    total = drilldown.range_total(account_id=account_id, meter=meter, start=span[0], end=span[1])
    return render(
        request,
        "dashboards/drilldown_hour.html",
        _base(ctx)
        | {
            "hour": _hour(hour),
            "hour_slug": hour,
            "page": page,
            "hour_total": total,
            "first_page": after is None,
        }
        | dispute_context(request, ctx, initial={"day": span[0].date(), "hour": span[0].hour}),
    )
