import csv

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from billing.access import account_may_use_product
from billing.mirror.subscriptions import subscription_state_for_account
from billing.selectors import user_manages_billing
from dashboards.access import (
    account_for_request,
    account_query,
    period_offset,
    render_not_found,
    require_amounts,
)
from dashboards.chart import chart_payload
from dashboards.invoices import invoices_for_account
from dashboards.members_views import alerts_shown, may_see_amounts
from dashboards.past_due import append_status_banner, status_banner_context
from dashboards.usage_export import usage_csv_filename, usage_csv_header, usage_csv_rows
from usage.selectors.alerts import alerts_sent_this_period
from usage.selectors.corrections import corrections_for_account
from usage.selectors.credit_balance import credit_balance
from usage.selectors.rollups import latest_event_at
from usage.selectors.summaries import period_summary


def _existing_offset(request: HttpRequest, state) -> int:
    """``?period=`` as an offset the subscription has: a period before it started (or
    after it ended) is a 404, like an offset out of range."""
    offset = period_offset(request)
    if state is not None and not state.has_period(offset):
        raise Http404("no such billing period")
    return offset


@require_GET
@login_required
@render_not_found
def home(request: HttpRequest) -> HttpResponse:
    account = account_for_request(request)
    state = subscription_state_for_account(account=account) if account else None
    offset = _existing_offset(request, state)
    summary = period_summary(account=account, state=state, offset=offset) if state else None
    # The live credit balance (None without grants): the current period only.
    credits = (
        credit_balance(account=account, summary=summary)
        if summary is not None and offset == 0 and not summary.closed
        else None
    )
    show_amounts = may_see_amounts(request, account)  # viewers, if the operator says so
    context = {
        "account": account,
        "show_amounts": show_amounts,
        "state": state,
        "summary": summary,
        "credits": credits,
        "offset": offset,
        "periods": state.past_periods(limit=4) if state else [],  # none before it started
        "may_use": account_may_use_product(account),
        "can_manage_billing": account is not None
        and user_manages_billing(account=account, user=request.user),
        "last_event_at": latest_event_at(account=account) if account else None,
        "sent_alerts": (
            alerts_shown(
                alerts_sent_this_period(account=account, period_start=summary.period_start),
                show_amounts=show_amounts,
            )
            if summary
            else []
        ),
        "account_query": account_query(request),
        **status_banner_context(account=account),
    }
    if request.htmx:
        response = render(request, "dashboards/home.html#summary", context)
        append_status_banner(request, response, context)
        if summary is None or summary.closed:
            # Nothing left to update: show the final numbers and stop the polling.
            stop = HttpResponseStopPolling(response.content)
            return stop
        return response
    return render(request, "dashboards/home.html", context)


@require_GET
@login_required
def chart(request: HttpRequest, event_name: str) -> JsonResponse:
    account = account_for_request(request)
    if account is None:
        raise Http404("no account")
    state = subscription_state_for_account(account=account)
    item = next(
        (i for i in (state.metered_items if state else ()) if i.meter.event_name == event_name),
        None,
    )
    if item is None:
        raise Http404("no such meter on this account's plan")
    granularity = request.GET.get("granularity", "day")
    if granularity not in ("day", "hour"):
        return JsonResponse(
            {"error": {"code": "invalid_granularity", "message": "granularity: day or hour"}},
            status=400,
        )
    payload = chart_payload(
        account=account,
        state=state,
        item=item,
        offset=_existing_offset(request, state),
        granularity=granularity,
    )
    return JsonResponse(payload)


@require_GET
@login_required
@render_not_found
def invoices(request: HttpRequest) -> HttpResponse:
    account = account_for_request(request)
    require_amounts(request, account)  # viewers, if the operator hides amounts from them
    return render(
        request,
        "dashboards/invoices.html",
        {
            "account": account,
            "invoices": invoices_for_account(account=account) if account else [],
            "corrections": corrections_for_account(account=account) if account else [],
        },
    )


@require_GET
@login_required
@render_not_found
def usage_csv(request: HttpRequest) -> HttpResponse:
    account = account_for_request(request)
    if account is None:
        raise Http404("no account")
    state = subscription_state_for_account(account=account)
    if state is None:
        raise Http404("no subscription")
    offset = _existing_offset(request, state)
    start, end = state.period(offset)
    response = HttpResponse(content_type="text/csv")
    filename = usage_csv_filename(account=account, start=start, end=end)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    cut = None if may_see_amounts(request, account) else -1  # the cost column is the last
    writer.writerow(usage_csv_header(currency=state.currency)[:cut])
    now = timezone.now()
    rows = usage_csv_rows(account=account, state=state, start=start, end=end, now=now)
    writer.writerows(row[:cut] for row in rows)
    return response
