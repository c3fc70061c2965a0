"""The alerts page: rules added and removed with HTMX forms, errors shown inline.

Owners and billing members (and staff viewing as the customer with ``usage.add_alertrule``
/ ``usage.delete_alertrule``) add and remove rules; viewers see the page without the
forms and get a 403 for a POST. When the operator hides amounts from viewers
(``BILLING_VIEWERS_SEE_AMOUNTS=false``), a viewer's page has no spend or credit figures
and lists only usage rules and the alerts they may see.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Meter
from billing.selectors import user_manages_billing
from dashboards.access import (
    account_for_request,
    account_url,
    may_see_amounts,
    render_not_found,
    viewing_as,
)
from dashboards.forms import AlertRuleForm, SlackWebhookForm
from dashboards.members_views import alerts_shown
from usage.models import AlertRule
from usage.selectors.alerts import alerts_sent_this_period, spend_so_far
from usage.selectors.credit_balance import CreditBalance, credit_balance
from usage.selectors.summaries import period_summary
from usage.services.alert_scheduling import alerts_schedule_evaluation
from usage.services.alert_slack import (
    SlackTestResult,
    slack_test_send,
    slack_url_masked,
    slack_url_remove,
    slack_url_set,
)
from usage.services.alerts import alert_rule_create, alert_rule_delete

SLACK_PERMISSION = "billing.change_account"  # staff viewing as the customer
RULE_PERMISSIONS = ("usage.add_alertrule", "usage.delete_alertrule")  # staff viewing as


def _spend_so_far(account, state) -> tuple[dict | None, CreditBalance | None]:
    """What spend rules compare with: base fee + usage charges this period; and what
    credit rules compare with: the live credit balance (None without credits)."""
    if state is None:
        return None, None
    summary = period_summary(account=account, state=state, offset=0)
    spend = {
        "base_fee": summary.base_fee,
        "usage": summary.usage_cost_so_far,
        "total": spend_so_far(summary),
    }
    return spend, credit_balance(account=account, summary=summary)


def _slack_context(request, account, slack_form=None, slack_test=None) -> dict:
    if viewing_as(request) is not None:
        manages = request.user.has_perm(SLACK_PERMISSION)
    else:
        manages = user_manages_billing(account=account, user=request.user)
    return {
        "slack_manages": manages,
        "slack_set": bool(account.slack_webhook_url),
        "slack_masked": slack_url_masked(account.slack_webhook_url),
        "slack_form": slack_form or SlackWebhookForm(),
        "slack_test": slack_test,
    }


def _may_manage_rules(request, account) -> bool:
    if viewing_as(request) is not None:
        return all(request.user.has_perm(p) for p in RULE_PERMISSIONS)
    return user_manages_billing(account=account, user=request.user)


def _require_rule_manager(request, account) -> None:
    """A 403 for viewers (staff: account_for_request checked their permission)."""
    if viewing_as(request) is None and not user_manages_billing(account=account, user=request.user):
        raise PermissionDenied("Only owners and billing members may change alert rules.")


def _context(request, account, form=None):
    state = subscription_state_for_account(account=account)
    meters = [i.meter for i in state.metered_items if i.included_units] if state else []
    currency = state.currency if state else account.currency
    show_amounts = may_see_amounts(request, account)  # viewers, if the operator says so
    spend, credits = _spend_so_far(account, state) if show_amounts else (None, None)
    rules = AlertRule.objects.filter(account=account).select_related("meter")
    if not show_amounts:  # a spend or credit rule states an amount
        rules = rules.filter(kind__in=AlertRule.USAGE_KINDS)
    may_manage = _may_manage_rules(request, account)
    return {
        "account": account,
        "state": state,
        "currency": currency,
        "show_amounts": show_amounts,
        "may_manage_rules": may_manage,
        "form": (form or AlertRuleForm(meters=meters, currency=currency)) if may_manage else None,
        "meters": meters,
        "spend": spend,
        "credits": credits,
        "rules": rules,
        "sent": (
            alerts_shown(
                alerts_sent_this_period(account=account, period_start=state.period_start),
                show_amounts=show_amounts,
            )
            if state
            else []
        ),
        **_slack_context(request, account),
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
    _require_rule_manager(request, account)
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
    _require_rule_manager(request, account)
    if not alert_rule_delete(account=account, rule_id=rule_id):
        raise Http404("no such rule")
    if request.htmx:
        return render(request, "dashboards/alerts.html#rules", _context(request, account))
    return redirect(account_url(request, "dashboards:alerts"))


def _slack_manager(request: HttpRequest):
    """The account and whether staff act on it; members get a 403."""
    account = _account(request, SLACK_PERMISSION)
    staff = viewing_as(request) is not None  # account_for_request checked the permission
    if not staff and not user_manages_billing(account=account, user=request.user):
        raise PermissionDenied("Only owners and billing members may change the Slack webhook.")
    return account, staff


def _slack_answer(request, account, *, form=None, test=None, status=200) -> HttpResponse:
    slack = _slack_context(request, account, form, test)
    if request.htmx:
        context = {"account": account, **slack}
        return render(request, "dashboards/_alert_slack.html", context, status=status)
    if status == 200 and test is None:
        return redirect(account_url(request, "dashboards:alerts"))
    context = {**_context(request, account), **slack}
    return render(request, "dashboards/alerts.html", context, status=status)


@require_POST
@login_required
@render_not_found
def alert_slack_set(request: HttpRequest) -> HttpResponse:
    account, staff = _slack_manager(request)
    form = SlackWebhookForm(request.POST)
    if form.is_valid():
        try:
            slack_url_set(
                account=account,
                url=form.cleaned_data["slack_webhook_url"],
                user=request.user,
                staff=staff,
            )
        except ValidationError as exc:
            for field, messages in exc.error_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            return _slack_answer(request, account)
    return _slack_answer(request, account, form=form, status=422)


@require_POST
@login_required
@render_not_found
def alert_slack_test(request: HttpRequest) -> HttpResponse:
    account, staff = _slack_manager(request)
    try:
        result = slack_test_send(account=account, user=request.user, staff=staff)
    except ValidationError as exc:  # no URL set (the button shows only when one is)
        result = SlackTestResult(status_code=None, error=" ".join(exc.messages))
        return _slack_answer(request, account, test=result, status=422)
    return _slack_answer(request, account, test=result)


@require_POST
@login_required
@render_not_found
def alert_slack_remove(request: HttpRequest) -> HttpResponse:
    account, staff = _slack_manager(request)
    slack_url_remove(account=account, user=request.user, staff=staff)
    return _slack_answer(request, account)
