"""The plan simulator page: the account's own usage of its last closed periods and this
period's projection, priced on every plan it could move to
(:func:`usage.selectors.simulator.plan_simulation`).

Owners and billing members see it; viewers only while the operator shows them amounts
(``settings.BILLING_VIEWERS_SEE_AMOUNTS``, default True); staff viewing as the customer
need ``billing.view_account`` (:func:`dashboards.access.account_for_request`).
"""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.money import format_money
from billing.selectors import user_manages_billing
from dashboards.access import account_for_request, render_not_found, viewing_as
from dashboards.members_views import may_see_amounts
from usage.selectors.simulator import PlanSimulation, Simulation, plan_simulation


def _periods_phrase(count: int) -> str:
    return "your last billing period" if count == 1 else f"your last {count} billing periods"


def difference_sentence(*, plan: PlanSimulation, currency: str, periods: int) -> str:
    """ "You would have paid $386.00 less on Starter over your last 3 billing periods.\""""
    if not periods:
        return ""
    difference = plan.closed_difference
    over = _periods_phrase(periods)
    if difference == 0:
        return f"You would have paid the same on {plan.name} over {over}."
    word = "less" if difference < 0 else "more"
    amount = format_money(abs(difference), currency)
    return f"You would have paid {amount} {word} on {plan.name} over {over}."


def projection_sentence(*, plan: PlanSimulation, currency: str) -> str:
    """ "This period would come to about $129.00 less on Starter.\""""
    difference = plan.projection_difference
    if difference is None:
        return ""
    if difference == 0:
        return f"This period would cost about the same on {plan.name}."
    word = "less" if difference < 0 else "more"
    return (
        f"This period is on track to cost about {format_money(abs(difference), currency)} "
        f"{word} on {plan.name}."
    )


@dataclass(frozen=True)
class PlanRow:
    plan: PlanSimulation
    closed: tuple  # PeriodCost, oldest first (as the table's columns)
    sentence: str
    projection_sentence: str


def simulator_context(simulation: Simulation) -> dict:
    """The table: plans x periods (oldest first), the projection, the sentences."""
    count = len(simulation.closed_periods)
    rows = [
        PlanRow(
            plan=plan,
            closed=tuple(reversed(plan.closed)),
            sentence=""
            if plan.is_current
            else difference_sentence(plan=plan, currency=simulation.currency, periods=count),
            projection_sentence=""
            if plan.is_current
            else projection_sentence(plan=plan, currency=simulation.currency),
        )
        for plan in simulation.plans
    ]
    cheaper = sorted(
        (row for row in rows if not row.plan.is_current and row.plan.closed_difference < 0),
        key=lambda row: row.plan.closed_difference,
    )
    return {
        "simulation": simulation,
        "currency": simulation.currency,
        "periods": tuple(reversed(simulation.closed_periods)),
        "rows": rows,
        "actual_closed": tuple(reversed(simulation.actual.closed)),
        "best": cheaper[0] if cheaper else None,
        "current_on_catalog": any(row.plan.is_current for row in rows),
    }


@require_GET
@login_required
@render_not_found
def simulator(request: HttpRequest) -> HttpResponse:
    account = account_for_request(request)
    if account is None:
        raise Http404("no account")
    if not may_see_amounts(request, account):
        raise PermissionDenied("Your role does not show amounts; ask an owner of the account.")
    simulation = plan_simulation(account=account)
    context = {
        "account": account,
        "simulation": simulation,
        # Owners and billing members change the plan in-app (staff do it in the admin).
        "may_change_plan": viewing_as(request) is None
        and user_manages_billing(account=account, user=request.user),
    }
    if simulation is not None:
        context.update(simulator_context(simulation))
    return render(request, "dashboards/simulator.html", context)
