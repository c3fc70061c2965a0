"""Resolving alerts: a new period, or a raised budget.

- **Period ended.** The sweep marks every open delivery of a period that has ended
  resolved (``resolved_at`` = the period's end, ``resolution`` "period ended"); each
  rule and budget level alerts again in the new period (a new ``period_start``).
- **Budget raised.** ``budget_changed(budget=..., old_limit=...)`` — called by whatever
  saves a budget (the budget form, admin), after saving the new limit, in the same
  transaction. When the limit went up, each open delivery of the current period whose
  level the usage no longer reaches at the new limit is resolved "budget raised ..."
  and *detached* from the budget (``budget`` set to NULL; the row keeps its level,
  period, numbers, summary, e-mail and channel history, and ``resolution`` names the
  budget and both limits). Detaching takes the row out of the
  ``alert_once_per_budget_level_period`` constraint, which is what re-arms the level:
  when usage crosses it again at the new limit, the next evaluation claims a new row
  (a new alert id for webhook receivers) exactly once, like the first. Levels still
  reached at the new limit stay open and do not alert again. Lowering a limit resolves
  nothing; newly reached levels alert on the next evaluation.
"""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from usage.models import AlertDelivery
from usage.models_budgets import Budget
from usage.selectors.budgets import budget_amount_text, budget_statuses

PERIOD_ENDED = "period ended"


def alerts_resolve_ended_periods(
    *, now: datetime | None = None, account_ids: Iterable[int] | None = None
) -> int:
    """Resolve the open deliveries of periods that ended by ``now`` (one UPDATE)."""
    open_ended = AlertDelivery.objects.filter(
        resolved_at__isnull=True, period_end__lte=now or timezone.now()
    )
    if account_ids is not None:
        open_ended = open_ended.filter(account_id__in=list(account_ids))
    return open_ended.update(resolved_at=F("period_end"), resolution=PERIOD_ENDED)


def budget_changed(*, budget: Budget, old_limit: int, now: datetime | None = None) -> int:
    """Resolve and re-arm the current period's levels a raised budget no longer reaches
    (see the module docstring); returns how many deliveries were resolved. Call after
    the new limit is saved, inside the transaction that saved it."""
    if budget.limit <= old_limit:
        return 0
    now = now or timezone.now()
    status = next(
        (s for s in budget_statuses(account=budget.account, now=now) if s.budget.pk == budget.pk),
        None,
    )
    if status is None:
        return 0  # no open period (or a spend budget in another currency): nothing is open
    resolution = (
        f"budget {budget.pk} raised from {budget_amount_text(status, old_limit)} "
        f"to {budget_amount_text(status, budget.limit)}"
    )
    return (
        AlertDelivery.objects.filter(
            budget=budget, period_start=status.period_start, resolved_at__isnull=True
        )
        .exclude(level__in=status.levels_reached)
        .update(budget=None, resolved_at=now, resolution=resolution[:100])
    )
