"""Plan change in-app: choose a plan, now or at the end of the period, see Stripe's
proration preview (``create_preview``) with what is due now, confirm.

Only owners and billing members change the plan (viewers get a 403 on every view of it;
staff viewing as a customer see the page without the form: they change plans in the
admin). The confirmation is a POST with CSRF; after it the page says it is waiting for
Stripe and polls (htmx) until the mirror, updated by Stripe's
``customer.subscription.updated`` webhook through dj-stripe, shows the change.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from billing.mirror.subscriptions import live_subscription_for_account
from billing.models import Plan
from billing.selectors import user_manages_billing
from billing.services.plan_change import (
    NOW,
    PERIOD_END,
    WHEN_CHOICES,
    PlanChangeError,
    plan_change_apply,
    plan_change_pending,
    plan_change_preview,
)
from billing.services.subscriptions import plans_for_account
from dashboards.access import account_for_request, account_url, render_not_found, viewing_as

POLL_SECONDS = 2


def _account(request: HttpRequest):
    account = account_for_request(request)
    if account is None:
        raise Http404("no account")
    if viewing_as(request) is None and not user_manages_billing(account=account, user=request.user):
        raise PermissionDenied("Only owners and billing members may change the plan.")
    return account


def _may_change(request: HttpRequest) -> bool:
    return viewing_as(request) is None  # staff viewing as a customer: read-only


def _require_change(request: HttpRequest) -> None:
    if not _may_change(request):
        raise PermissionDenied("Staff change a customer's plan in the admin.")


def _context(request: HttpRequest, account, **extra) -> dict:
    mirrored = live_subscription_for_account(account=account)
    current = mirrored.plan if mirrored else None
    choices = list(plans_for_account(account=account))
    if current is not None:
        choices = [plan for plan in choices if plan.pk != current.pk]
    return {
        "account": account,
        "subscription": mirrored,
        "current_plan": current,
        "choices": choices,
        "pending": plan_change_pending(account=account) if mirrored else None,
        "may_change": _may_change(request),
        "now": NOW,
        "period_end": PERIOD_END,
        "poll_seconds": POLL_SECONDS,
        **extra,
    }


def _plan(account, key: str) -> Plan | None:
    return plans_for_account(account=account).filter(key=key).first() if key else None


@require_GET
@login_required
@render_not_found
def plan_change(request: HttpRequest) -> HttpResponse:
    account = _account(request)
    context = _context(request, account)
    waiting = _plan(account, request.GET.get("waiting", ""))
    if waiting is not None:
        context.update(waiting=waiting, when=request.GET.get("when", NOW))
    return render(request, "dashboards/plan_change.html", context)


@require_GET
@login_required
@render_not_found
def plan_change_preview_view(request: HttpRequest) -> HttpResponse:
    account = _account(request)
    _require_change(request)
    key, when = request.GET.get("plan", ""), request.GET.get("when", NOW)
    context = _context(request, account, chosen=key, when=when)
    status = 200
    try:
        context["preview"] = plan_change_preview(
            account=account, plan=_plan(account, key), when=when
        )
    except PlanChangeError as exc:
        context["error"], status = exc, 422
    template = "dashboards/plan_change.html"
    return render(
        request, f"{template}#preview" if request.htmx else template, context, status=status
    )


@require_POST
@login_required
@render_not_found
def plan_change_apply_view(request: HttpRequest) -> HttpResponse:
    account = _account(request)
    _require_change(request)
    key, when = request.POST.get("plan", ""), request.POST.get("when", "")
    plan = _plan(account, key)
    try:
        total = int(request.POST.get("total", ""))
        raw_date = request.POST.get("proration_date", "")
        proration_date = int(raw_date) if raw_date else None
    except ValueError:
        total, proration_date = None, None
    context = _context(request, account, chosen=key, when=when)
    try:
        if total is None:
            raise PlanChangeError(
                "preview_required", None, "Preview the change before confirming it."
            )
        plan_change_apply(
            account=account,
            plan=plan,
            when=when,
            confirmed_preview_total=total,
            proration_date=proration_date,
        )
    except PlanChangeError as exc:
        context["error"] = exc
        template = "dashboards/plan_change.html"
        return render(
            request, f"{template}#preview" if request.htmx else template, context, status=422
        )
    if request.htmx:  # the confirmed preview goes: its button must not be pressed twice
        context.update(waiting=plan, when=when, oob_preview=True)
        return render(request, "dashboards/plan_change.html#status", context)
    return redirect(account_url(request, "dashboards:plan_change", waiting=plan.key, when=when))


def _arrived(account, plan: Plan, when: str) -> bool:
    """Whether the mirror shows the change: the new plan (now), or the subscription
    attached to the schedule that will make it (period end)."""
    mirrored = live_subscription_for_account(account=account)
    if mirrored is None:
        return False
    if when == PERIOD_END:
        return bool(mirrored.data.get("schedule")) or (
            mirrored.plan is not None and mirrored.plan.pk == plan.pk
        )
    return mirrored.plan is not None and mirrored.plan.pk == plan.pk


@require_GET
@login_required
@render_not_found
def plan_change_status(request: HttpRequest) -> HttpResponse:
    """The polled region: "waiting for Stripe" until the webhook has updated the mirror."""
    account = _account(request)
    plan = _plan(account, request.GET.get("plan", ""))
    when = request.GET.get("when", NOW)
    if plan is None or when not in WHEN_CHOICES:
        raise Http404("no such plan change")
    arrived = _arrived(account, plan, when)
    # Once arrived, the rest of the page follows the mirror too (out-of-band swaps): the
    # current plan line, the form's choices, and no stale preview left to confirm.
    context = _context(
        request,
        account,
        waiting=plan,
        when=when,
        arrived=arrived,
        oob_page=arrived,
        oob_preview=arrived,
    )
    response = render(request, "dashboards/plan_change.html#status", context)
    if arrived:
        return HttpResponseStopPolling(response.content)
    return response
