"""The dashboard's Budgets section: each budget's card (used / limit, the warn levels on a
bar, when it resets, what happens at the limit) and, for owners and billing members (and
staff viewing as the customer with the budget permissions), the form that sets, edits and
deletes them. HTMX swaps ``#budgets``; without JavaScript the same views answer with the
whole page (``dashboards/budgets.html``) or a redirect to it.

Errors: 422 with the form, each error next to its field carrying its ``data-code``.
Members get a 403 for a change; another account's budget is a 404. A viewer kept from
amounts (``BILLING_VIEWERS_SEE_AMOUNTS=false``) sees only the units budgets' cards.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.mirror.subscriptions import subscription_state_for_account
from billing.money import currency_exponent
from billing.selectors import user_manages_billing
from dashboards.access import (
    account_for_request,
    account_url,
    may_see_amounts,
    render_not_found,
    viewing_as,
)
from dashboards.forms import BudgetForm
from usage.models import Budget
from usage.selectors.budgets import BudgetStatus, budget_statuses
from usage.services.budgets import budget_delete, budget_set

OPERATOR = "Meterdesk"
SET_PERMISSIONS = ("usage.add_budget", "usage.change_budget")
DELETE_PERMISSIONS = ("usage.delete_budget",)
# The service's fields as the form names them.
FORM_FIELDS = {"kind": "target", "meter": "target"}


@dataclass(frozen=True)
class BudgetCard:
    """One ``BudgetStatus`` as the card draws it."""

    status: BudgetStatus
    bar_percent: int  # the bar's fill, 0..100
    levels: list[tuple[int, bool, int]]  # (level, reached, label row 0 or 1)

    @property
    def two_rows(self) -> bool:
        return any(row for _, _, row in self.levels)

    @property
    def budget(self) -> Budget:
        return self.status.budget

    @property
    def left(self) -> int:
        """Units or minor units before the limit (0 at or over it)."""
        return max(self.status.limit - self.status.used, 0)

    @property
    def over(self) -> int:
        """Units or minor units over the limit (0 below it)."""
        return max(self.status.used - self.status.limit, 0)


# Labels of levels closer than this (points of the bar) go on a second row under it, so
# "80%" and "100%" never overlap on a phone.
LABEL_GAP = 25


def _label_rows(levels: list[int]) -> list[int]:
    rows, last_on_first_row = [], None
    for level in levels:
        crowded = last_on_first_row is not None and level - last_on_first_row < LABEL_GAP
        rows.append(1 if crowded else 0)
        if not crowded:
            last_on_first_row = level
    return rows


def budget_cards(statuses) -> list[BudgetCard]:
    cards = []
    for status in statuses:
        reached = set(status.levels_reached)
        levels = sorted(status.budget.warn_levels)
        cards.append(
            BudgetCard(
                status=status,
                bar_percent=max(0, min(100, int(status.percent))),
                levels=[
                    (level, level in reached, row)
                    for level, row in zip(levels, _label_rows(levels), strict=True)
                ],
            )
        )
    return cards


def _may_manage(request: HttpRequest, account) -> bool:
    if viewing_as(request) is not None:
        return all(request.user.has_perm(p) for p in (*SET_PERMISSIONS, *DELETE_PERMISSIONS))
    return user_manages_billing(account=account, user=request.user)


def _account(request: HttpRequest, staff_permissions: tuple[str, ...] = ()):
    account = account_for_request(request, staff_permissions=staff_permissions)
    if account is None:
        raise Http404("no account")
    return account


def _require_manager(request: HttpRequest, account) -> str:
    """The source of the change (customer, or staff viewing as), or a 403 for members."""
    if viewing_as(request) is not None:
        return Budget.Source.STAFF  # account_for_request checked the permissions
    if not user_manages_billing(account=account, user=request.user):
        raise PermissionDenied("Only owners and billing members may change budgets.")
    return Budget.Source.CUSTOMER


def _initial(budget: Budget) -> dict:
    if budget.kind == Budget.Kind.SPEND:
        limit = Decimal(budget.limit).scaleb(-currency_exponent(budget.currency))
        target = BudgetForm.SPEND
    else:
        limit, target = budget.limit, budget.meter.event_name
    return {
        "target": target,
        "limit": limit,
        "warn_levels": ", ".join(str(level) for level in budget.warn_levels),
        "hard_cap": budget.hard_cap,
    }


def _statuses_shown(request: HttpRequest, account) -> list[BudgetStatus]:
    """Every budget's status; for a viewer kept from amounts (``may_see_amounts``), only
    the units budgets (a spend budget's card is money)."""
    statuses = budget_statuses(account=account)
    if may_see_amounts(request, account):
        return list(statuses)
    return [s for s in statuses if s.budget.kind != Budget.Kind.SPEND]


def _context(request: HttpRequest, account, *, form=None, editing=None) -> dict:
    state = subscription_state_for_account(account=account)
    meters = [item.meter for item in state.metered_items] if state else []
    currency = state.currency if state else account.currency
    may_manage = state is not None and _may_manage(request, account)
    if may_manage and form is None:
        initial = _initial(editing) if editing is not None else None
        form = BudgetForm(initial=initial, meters=meters, currency=currency)
    return {
        "account": account,
        "state": state,
        "currency": currency,
        "meters": meters,
        "cards": budget_cards(_statuses_shown(request, account)) if state else [],
        "may_manage": may_manage,
        "form": form if may_manage else None,
        "editing": editing,
        "operator": OPERATOR,
    }


def _respond(request: HttpRequest, context: dict, *, status: int = 200) -> HttpResponse:
    if request.htmx:
        return render(request, "dashboards/_budgets.html", context, status=status)
    return render(request, "dashboards/budgets.html", context, status=status)


@require_GET
@login_required
@render_not_found
def budgets(request: HttpRequest) -> HttpResponse:
    """The section (HTMX, also loaded by the usage page) or the page. ``?edit=<id>``
    fills the form with that budget."""
    account = _account(request)
    if request.GET.get("part") == "cards":  # the cards' refresh
        return render(request, "dashboards/_budgets.html#cards", _context(request, account))
    editing = None
    edit = request.GET.get("edit", "")
    if edit:
        editing = Budget.objects.filter(account=account, pk=int(edit) if edit.isdigit() else 0)
        editing = editing.select_related("meter").first()
        if editing is None:
            raise Http404("no such budget")
    return _respond(request, _context(request, account, editing=editing))


@require_POST
@login_required
@render_not_found
def budget_save(request: HttpRequest) -> HttpResponse:
    account = _account(request, SET_PERMISSIONS)
    source = _require_manager(request, account)
    context = _context(request, account)
    if context["state"] is None:
        raise Http404("no subscription")
    form = BudgetForm(request.POST, meters=context["meters"], currency=context["currency"])
    if form.is_valid():
        data = form.cleaned_data
        try:
            budget_set(
                account=account,
                kind=data["kind"],
                meter=data["meter"],
                limit=data["limit"],
                warn_levels=data["warn_levels"],
                hard_cap=data["hard_cap"],
                user=request.user,
                source=source,
            )
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                field = FORM_FIELDS.get(field, field)
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
    if form.errors:
        return _respond(request, _context(request, account, form=form), status=422)
    if request.htmx:
        return _respond(request, _context(request, account))
    return redirect(account_url(request, "dashboards:budgets"))


@require_POST
@login_required
@render_not_found
def budget_remove(request: HttpRequest, budget_id: int) -> HttpResponse:
    account = _account(request, DELETE_PERMISSIONS)
    source = _require_manager(request, account)
    deleted = budget_delete(
        account=account,
        budget_id=budget_id,
        user=request.user,
        staff=source == Budget.Source.STAFF,
    )
    if not deleted:
        raise Http404("no such budget")
    if request.htmx:
        return _respond(request, _context(request, account))
    return redirect(account_url(request, "dashboards:budgets"))
