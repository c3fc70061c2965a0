"""Budget status: how much of each budget an account has used this billing period.

One engine for every reader: the dashboard's budget card, the entitlement check
(``cap_reached``) and the alert sweep all read :func:`budget_statuses` /
:func:`budget_statuses_for_accounts`, so they agree to the unit and the cent.

- A ``units`` budget's ``used`` is the meter's usage so far this period, read through
  ``rollup_values`` (the period summary's line when the meter is on the plan, else one
  more ``rollup_values`` call for the chunk's other budgeted meters).
- A ``spend`` budget's ``used`` is the bill for the period so far:
  ``billing.pricing.bill_amount`` over every price of the current subscription, licensed
  ones at their quantity and metered ones at the usage so far (equal to the summary's
  ``base_fee + usage_cost_so_far`` that the dashboard and the spend rules show). A spend
  budget in another currency than the subscription's has no status (it is left out).

Only open periods have a status: an account whose period has ended but whose mirror has
not heard of the next one yet gets none until it has (no stale ``cap_reached``).
Queries are bounded per call: the period summaries (constant per chunk), the budgets
(one), and at most one more ``rollup_values`` call.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from billing.models import Account
from billing.money import format_money
from billing.pricing import bill_amount
from billing.units import quantity_text
from usage.models_budgets import Budget
from usage.selectors.rollups import Bucket, rollup_values
from usage.selectors.summaries import period_summaries_for_accounts
from usage.selectors.summary_lines import PeriodSummary


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    used: int  # units of the meter, or the bill so far in minor units (spend)
    limit: int
    currency: str  # "" for units budgets
    percent: int  # floor(used * 100 / limit)
    levels_reached: tuple[int, ...]  # warn levels with used >= limit * level / 100
    period_start: datetime
    period_end: datetime  # = resets_at
    cap_reached: bool  # budget.hard_cap and used >= limit

    @property
    def resets_at(self) -> datetime:
        return self.period_end

    def level_threshold(self, level: int) -> int:
        """The smallest ``used`` that reaches ``level``: ceil(limit * level / 100)."""
        return -(-self.limit * level // 100)


def spend_so_far(summary: PeriodSummary) -> int:
    """The bill for the period so far, minor units: ``billing.pricing.bill_amount`` over
    every price of the subscription, licensed ones at their quantity and metered ones at
    the usage so far (each line rounded once, as on the invoice). The same figure as the
    summary's ``base_fee + usage_cost_so_far`` that the dashboard and spend rules show."""
    usage = {line.item.item_id: line.usage for line in summary.lines}
    return bill_amount(
        items=[
            (item.spec, usage.get(item.item_id, 0) if item.is_metered else item.quantity)
            for item in summary.state.items
        ]
    )


def budget_status(*, budget: Budget, used: int, summary: PeriodSummary) -> BudgetStatus:
    """The status of one budget given what was used (exact integer arithmetic)."""
    limit = budget.limit
    levels = sorted({int(level) for level in budget.warn_levels or ()})
    return BudgetStatus(
        budget=budget,
        used=used,
        limit=limit,
        currency=budget.currency if budget.kind == Budget.Kind.SPEND else "",
        percent=used * 100 // limit,
        # used >= limit * level / 100, without division: used * 100 >= limit * level.
        levels_reached=tuple(level for level in levels if used * 100 >= limit * level),
        period_start=summary.period_start,
        period_end=summary.period_end,
        cap_reached=budget.hard_cap and used >= limit,
    )


def budget_statuses_from_summaries(
    *,
    summaries: Mapping[int, PeriodSummary],
    budgets: Iterable[Budget] | None = None,
    usage: Mapping[tuple[int, int], list[Bucket]] | None = None,
) -> dict[int, list[BudgetStatus]]:
    """Statuses of the budgets of the summarized accounts (``budgets``: those already
    loaded; else one query). Accounts with no budget get an empty list. ``usage``: the
    ``rollup_values(group="range")`` of the summaries' periods covering the budgeted
    meters, when the caller read it already (else one more read for off-plan meters)."""
    if budgets is None:
        budgets = Budget.objects.filter(account_id__in=list(summaries)).select_related("meter")
    budgets = [b for b in budgets if b.account_id in summaries]
    on_plan = {
        (account_id, line.meter.pk): line.usage
        for account_id, summary in summaries.items()
        for line in summary.lines
    }
    off_plan = [
        b
        for b in budgets
        if b.kind == Budget.Kind.UNITS and (b.account_id, b.meter_id) not in on_plan
    ]
    if off_plan and usage is not None:
        for b in off_plan:
            buckets = usage.get((b.account_id, b.meter_id))
            on_plan.setdefault((b.account_id, b.meter_id), buckets[0].value if buckets else 0)
    elif off_plan:
        ranges = {
            b.account_id: (summaries[b.account_id].period_start, summaries[b.account_id].period_end)
            for b in off_plan
        }
        meters = {b.meter_id: b.meter for b in off_plan}.values()
        for key, buckets in rollup_values(ranges=ranges, meters=meters, group="range").items():
            on_plan.setdefault(key, buckets[0].value if buckets else 0)
    statuses: dict[int, list[BudgetStatus]] = {account_id: [] for account_id in summaries}
    for budget in budgets:
        summary = summaries[budget.account_id]
        if budget.kind == Budget.Kind.SPEND:
            if budget.currency.lower() != (summary.currency or "").lower():
                continue
            used = spend_so_far(summary)
        else:
            used = on_plan.get((budget.account_id, budget.meter_id), 0)
        statuses[budget.account_id].append(budget_status(budget=budget, used=used, summary=summary))
    return statuses


def budget_statuses_for_accounts(
    *, accounts: Sequence[Account], now: datetime | None = None
) -> dict[int, list[BudgetStatus]]:
    """Every budget's status for each account with an open period (bulk, bounded
    queries: the summaries of the chunk, the budgets, at most one rollup read)."""
    summaries = period_summaries_for_accounts(accounts=list(accounts), now=now or timezone.now())
    return budget_statuses_from_summaries(summaries=summaries)


def budget_statuses(*, account: Account, now: datetime | None = None) -> list[BudgetStatus]:
    """The account's budgets this period (empty without a live subscription)."""
    return budget_statuses_for_accounts(accounts=[account], now=now).get(account.pk, [])


# Words --------------------------------------------------------------------------------


def budget_name(budget: Budget) -> str:
    """ "API calls budget" / "Spend budget"."""
    return f"{budget.meter.display_name if budget.meter_id else 'Spend'} budget"


def budget_amount_text(status: BudgetStatus, amount: int) -> str:
    """An amount of the budget's kind: "$120.00" (spend) or "16,000 calls" (units)."""
    if status.currency:
        return format_money(amount, status.currency)
    return quantity_text(amount, status.budget.meter.unit_label)


def budget_used_text(status: BudgetStatus) -> str:
    """ "16,000 of 20,000 calls (80%)" / "$130.00 of $150.00 (86%)"."""
    money = status.currency
    used = format_money(status.used, money) if money else f"{status.used:,}"
    return f"{used} of {budget_amount_text(status, status.limit)} ({status.percent}%)"


def budget_alert_summary(status: BudgetStatus, level: int) -> str:
    """The one line an alert of ``level`` says, in the e-mail subject, the admin, Slack
    and the webhook: "API calls budget: 80% reached, 16,000 of 20,000 calls (80%)"."""
    return f"{budget_name(status.budget)}: {level}% reached, {budget_used_text(status)}"
