"""The alerts page: rules added and removed with HTMX forms, errors shown inline."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Meter
from dashboards.access import account_for_request, account_url, render_not_found
from dashboards.forms import AlertRuleForm
from usage.models import AlertRule
from usage.selectors.alerts import alerts_sent_this_period, spend_so_far
from usage.selectors.summaries import period_summary
from usage.services.alert_scheduling import alerts_schedule_evaluation
from usage.services.alerts import alert_rule_create, alert_rule_delete


def _spend_so_far(account, state) -> dict | None:
    """What spend rules compare with: base fee + usage charges this period."""
    if state is None:
        return None
    summary = period_summary(account=account, state=state, offset=0)
    return {
        "base_fee": summary.base_fee,
        "usage": summary.usage_cost_so_far,
        "total": spend_so_far(summary),
    }


def _context(request, account, form=None):
    state = subscription_state_for_account(account=account)
    meters = [i.meter for i in state.metered_items if i.included_units] if state else []
    currency = state.currency if state else "usd"
    return {
        "account": account,
        "state": state,
        "currency": currency,
        "form": form or AlertRuleForm(meters=meters, currency=currency),
        "meters": meters,
        "spend": _spend_so_far(account, state),
        "rules": AlertRule.objects.filter(account=account).select_related("meter"),
        "sent": (
            alerts_sent_this_period(account=account, period_start=state.period_start)
            if state
            else []
        ),
    }


def _account(request, *staff_permissions: str):
    account = account_for_request(request, staff_permissions=staff_permissions)
    if account is None:
        raise Http404("no account")
    return account


@require_GET
@login_required
@render_not_found
def alerts(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboards/alerts.html", _context(request, _account(request)))


@require_POST
@login_required
@render_not_found
def alert_add(request: HttpRequest) -> HttpResponse:
    account = _account(request, "usage.add_alertrule")
    context = _context(request, account)
    form = AlertRuleForm(request.POST, meters=context["meters"], currency=context["currency"])
    if form.is_valid():
        data = form.cleaned_data
        try:
            alert_rule_create(
                account=account,
                kind=data["kind"],
                meter=Meter.objects.filter(pk=data.get("meter") or None).first(),
                threshold_percent=data.get("threshold_percent"),
                amount=data.get("amount"),
                currency=context["currency"],
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            form = None
            # A rule already crossed should not wait for the next sweep.
            alerts_schedule_evaluation(account_ids=[account.pk], debounce_seconds=0)
    context = _context(request, account, form)
    status = 422 if form is not None else 200
    if request.htmx:
        return render(request, "dashboards/alerts.html#rules", context, status=status)
    if form is None:
        return redirect(account_url(request, "dashboards:alerts"))
    return render(request, "dashboards/alerts.html", context, status=status)


@require_POST
@login_required
@render_not_found
def alert_remove(request: HttpRequest, rule_id: int) -> HttpResponse:
    account = _account(request, "usage.delete_alertrule")
    if not alert_rule_delete(account=account, rule_id=rule_id):
        raise Http404("no such rule")
    if request.htmx:
        return render(request, "dashboards/alerts.html#rules", _context(request, account))
    return redirect(account_url(request, "dashboards:alerts"))
