"""Budgets (issue 16): set by the customer on the dashboard (owners and billing members),
by staff in admin, or from the plan's defaults. One per meter (``units``) and one for the
whole bill (``spend``, minor units of the subscription's currency) per account.

Every error is a ``ValidationError`` keyed by the field, each with a machine-readable
``code`` (``limit_not_positive``, ``above_plan_maximum``, ``warn_levels_range``, ...).

Plan defaults (``PlanBudgetPolicy.default_limit``) are a floor the plan keeps: an account
on the plan always has that budget; the customer may change it (up to ``max_limit``),
and deleting it puts the plan's default back (``budget_delete`` re-applies them).

When a limit changes the alert engine's ``alert_resolution.budget_changed`` resolves
and re-arms the warn levels (inside the transaction); the entitlement snapshot follows
Budget saves and deletes by signal (``usage.apps``), and plan defaults are applied when
billing tells a subscription or account changed (``plan_default_budgets_apply_for``).
"""

import logging
from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from billing.mirror.subscriptions import SubscriptionState, subscription_state_for_account
from billing.models import Account, Meter
from billing.money import format_money
from billing.selectors import user_manages_billing
from billing.units import quantity_text
from usage.models import Budget, PlanBudgetPolicy
from usage.services.alert_resolution import budget_changed

logger = logging.getLogger(__name__)
Kind = Budget.Kind
Source = Budget.Source
MAX_WARN_LEVELS = 5


def _error(field: str, message: str, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def warn_levels_clean(levels: Iterable) -> list[int]:
    """Whole percentages 1..100, no repeats, at most five; returned sorted."""
    levels = list(levels)
    if not levels:
        raise _error("warn_levels", "Enter at least one warn level, like 80.", "warn_levels_empty")
    if len(levels) > MAX_WARN_LEVELS:
        raise _error(
            "warn_levels",
            f"Enter at most {MAX_WARN_LEVELS} warn levels ({len(levels)} given).",
            "warn_levels_too_many",
        )
    if any(isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= 100 for x in levels):
        raise _error(
            "warn_levels",
            "Warn levels are whole percentages from 1 to 100, like 50, 80, 100.",
            "warn_levels_range",
        )
    repeated = sorted({x for x in levels if levels.count(x) > 1})
    if repeated:
        raise _error(
            "warn_levels",
            f"Each warn level once: {', '.join(f'{x}%' for x in repeated)} is repeated.",
            "warn_levels_repeated",
        )
    return sorted(levels)


def limit_text(*, kind: str, limit: int, meter: Meter | None, currency: str) -> str:
    """``10,000 calls`` or ``$500.00``: a limit as the customer reads it."""
    if kind == Kind.SPEND:
        return format_money(limit, currency)
    return quantity_text(limit, meter.unit_label if meter else "unit")


def _policy_for(state: SubscriptionState, kind: str, meter: Meter | None, currency: str):
    if state.plan is None:
        return None
    found = PlanBudgetPolicy.objects.filter(plan=state.plan, kind=kind)
    if kind == Kind.UNITS:
        return found.filter(meter=meter).first()
    return found.filter(currency=currency).first()


def _validated(*, account, state, kind, meter, limit, warn_levels) -> tuple[str, list[int]]:
    """The budget's currency and sorted levels, or the first error by field."""
    if kind not in Kind.values:
        raise _error("kind", "Choose a meter or the whole bill.", "invalid_kind")
    if state is None:
        raise _error(
            "kind",
            f"{account.name} has no subscription yet: budgets start with one.",
            "no_subscription",
        )
    if kind == Kind.UNITS:
        if meter is None:
            raise _error("meter", "Choose a meter.", "meter_required")
        if meter.pk not in {item.meter.pk for item in state.metered_items}:
            raise _error("meter", f"{meter.display_name} is not on your plan.", "meter_not_on_plan")
    elif meter is not None:
        raise _error("meter", "A whole-bill budget has no meter.", "meter_not_allowed")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise _error("limit", "Enter a limit above zero.", "limit_not_positive")
    currency = state.currency.lower() if kind == Kind.SPEND else ""
    return currency, warn_levels_clean(warn_levels)


def budget_validate(
    *, account: Account, kind: str, meter: Meter | None, limit: int, warn_levels: Iterable[int]
) -> None:
    """``budget_set``'s checks of the values alone (not the plan's maximum nor who sets
    it), for forms that show the errors before saving (admin)."""
    state = subscription_state_for_account(account=account)
    _validated(
        account=account, state=state, kind=kind, meter=meter, limit=limit, warn_levels=warn_levels
    )


def _check_plan_maximum(*, state, kind, meter, currency, limit, existing) -> None:
    """Customers may not set a limit above the plan's maximum; they may keep one staff
    granted above it (only raising is refused)."""
    policy = _policy_for(state, kind, meter, currency)
    if policy is None or policy.max_limit is None or limit <= policy.max_limit:
        return
    if existing is not None and limit <= existing.limit:
        return
    most = limit_text(kind=kind, limit=policy.max_limit, meter=meter, currency=currency)
    raise _error(
        "limit",
        f"The {state.plan.name} plan allows a limit of at most {most}.",
        "above_plan_maximum",
    )


def budget_set(
    *,
    account: Account,
    kind: str,
    meter: Meter | None = None,
    limit: int,
    warn_levels: Iterable[int],
    hard_cap: bool,
    user=None,
    source: str,
) -> Budget:
    """Create or replace the account's budget for ``meter`` (units) or its whole bill
    (spend). ``source`` customer requires ``user`` to be an owner or billing member of
    the account (``PermissionDenied`` otherwise) and respects the plan's maximum; staff
    and plan defaults may exceed it."""
    if source not in Source.values:
        raise _error("source", f"Unknown budget source {source!r}.", "invalid_source")
    if source == Source.CUSTOMER and (
        user is None or not user_manages_billing(account=account, user=user)
    ):
        raise PermissionDenied("Only owners and billing members may set budgets.")
    state = subscription_state_for_account(account=account)
    currency, levels = _validated(
        account=account,
        state=state,
        kind=kind,
        meter=meter,
        limit=limit,
        warn_levels=warn_levels,
    )
    with transaction.atomic():
        existing = (
            Budget.objects.select_for_update()
            .filter(account=account, kind=kind, meter=meter if kind == Kind.UNITS else None)
            .first()
        )
        if source == Source.CUSTOMER:
            _check_plan_maximum(
                state=state,
                kind=kind,
                meter=meter,
                currency=currency,
                limit=limit,
                existing=existing,
            )
        budget = existing or Budget(account=account, kind=kind, meter=meter)
        old_limit = existing.limit if existing is not None else None
        budget.limit, budget.currency, budget.warn_levels = limit, currency, levels
        budget.hard_cap, budget.source = bool(hard_cap), source
        budget.updated_by = user if getattr(user, "is_authenticated", False) else None
        budget.save()
        if old_limit is not None and old_limit != limit:
            # The alert engine resolves and re-arms the levels a changed limit no
            # longer reaches (the entitlement snapshot follows Budget's post_save).
            budget_changed(budget=budget, old_limit=old_limit)
    return budget


def budget_delete(*, account: Account, budget_id: int, user=None, staff: bool = False) -> bool:
    """Delete one of the account's budgets (False: no such budget of this account). A
    customer's ``user`` must be an owner or billing member. A plan default comes back."""
    if not staff and (user is None or not user_manages_billing(account=account, user=user)):
        raise PermissionDenied("Only owners and billing members may delete budgets.")
    with transaction.atomic():
        budget = Budget.objects.select_for_update().filter(account=account, pk=budget_id).first()
        if budget is None:
            return False
        budget.delete()  # its alert deliveries keep their history (budget set to NULL)
    plan_default_budgets_apply(account)
    return True


def plan_default_budgets_apply(account: Account) -> list[Budget]:
    """Create the plan's default budgets the account does not have (idempotent): each
    policy with a ``default_limit`` whose meter is on the subscription (units) or whose
    currency is the subscription's (spend). Existing budgets are never changed."""
    state = subscription_state_for_account(account=account)
    if state is None or state.plan is None:
        return []
    meters = {item.meter.pk for item in state.metered_items}
    have = set(Budget.objects.filter(account=account).values_list("kind", "meter_id"))
    created = []
    policies = PlanBudgetPolicy.objects.filter(plan=state.plan, default_limit__isnull=False)
    for policy in policies.select_related("meter"):
        if (policy.kind, policy.meter_id) in have:
            continue
        if policy.kind == Kind.UNITS and policy.meter_id not in meters:
            continue
        if policy.kind == Kind.SPEND and policy.currency.lower() != state.currency.lower():
            continue
        try:
            created.append(
                budget_set(
                    account=account,
                    kind=policy.kind,
                    meter=policy.meter,
                    limit=policy.default_limit,
                    warn_levels=policy.default_warn_levels,
                    hard_cap=policy.default_hard_cap,
                    source=Source.PLAN_DEFAULT,
                )
            )
        except IntegrityError:
            continue  # a concurrent apply created it first
        except ValidationError:
            logger.warning("plan budget policy %s is invalid; skipped", policy.pk, exc_info=True)
    return created


def plan_default_budgets_apply_for(account_id: int) -> None:
    """``plan_default_budgets_apply`` by id: a ``billing.account_changes`` listener (told
    after a subscription or account change commits)."""
    account = Account.objects.filter(pk=account_id).first()
    if account is not None:
        plan_default_budgets_apply(account)
