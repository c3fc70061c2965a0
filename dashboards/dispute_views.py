"""Disputes of an invoice line, opened from the drill-down by owners and billing members.

``POST /dashboard/invoices/<invoice>/lines/<line>/disputes/``: the line must be the
account's (else a 404, like every drill-down URL); members may look but not dispute (403).
A valid form redirects to the line's page, where the dispute and its resolution show; an
invalid one renders the line's page again with the errors named by field.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from dashboards.access import account_url, render_not_found
from dashboards.disputes import DisputeForm, may_dispute
from dashboards.drilldown_views import line_context, line_page
from usage.services.disputes import usage_dispute_open


@require_POST
@login_required
@render_not_found
def dispute_open(request: HttpRequest, invoice_id: str, line_id: str) -> HttpResponse:
    ctx = line_context(request, invoice_id=invoice_id, line_id=line_id)
    if not may_dispute(request, ctx):
        raise PermissionDenied("Only owners and billing members may dispute a line.")
    form = DisputeForm(request.POST, line=ctx)
    if not form.is_valid():
        return line_page(request, ctx, dispute_form=form)
    usage_dispute_open(
        account=ctx.account, meter=ctx.line.meter, invoice_id=ctx.invoice.id,
        line_id=ctx.line.id, message=form.cleaned_data["message"], user=request.user,
        day=form.cleaned_data["day"], hour=form.cleaned_data["hour"],
    )  # fmt: skip
    return redirect(account_url(request, "dashboards:drilldown_line", invoice_id, line_id))
