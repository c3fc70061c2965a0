"""Alert reads: whether a rule is crossed in a period summary, who receives alerts, and
what was delivered this period. Nothing here writes."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q, QuerySet

from billing.models import Account
from billing.money import format_money
from billing.selectors import BILLING_ROLES
from billing.units import quantity_text
from usage.models import AlertDelivery, AlertRule
from usage.selectors.id_arrays import ids_condition
from usage.selectors.summary_lines import MeterLine, PeriodSummary

Kind = AlertRule.Kind
RULE_LEVEL = 100  # an AlertRule's deliveries all have this level


@dataclass(frozen=True)
class Check:
    rule: AlertRule
    observed: int
    threshold: int
    crossed: bool
    summary: str


def spend_breakdown_text(*, base_fee: int, usage: int, currency: str) -> str:
    """ "$99.00 base + $60.00 usage": what a spend alert's amount is made of."""
    return f"{format_money(base_fee, currency)} base + {format_money(usage, currency)} usage"


def spend_so_far(summary: PeriodSummary) -> int:
    """What spend alerts compare with: the base fee plus the usage charges so far."""
    return summary.base_fee + summary.usage_cost_so_far


def _line_for(summary: PeriodSummary, meter_id: int | None) -> MeterLine | None:
    return next((line for line in summary.lines if line.meter.pk == meter_id), None)


def _measure(rule: AlertRule, summary: PeriodSummary) -> tuple | None:
    """(observed, threshold, line or None, projected, usage cost) of a usage or spend
    rule in this summary; None when not applicable (a credit rule, a meter without an
    allowance here, a spend rule in another currency)."""
    if rule.kind in AlertRule.CREDIT_KINDS:
        return None  # credit rules compare the credit balance (usage.services.credit_alerts)
    if rule.kind in AlertRule.USAGE_KINDS:
        line = _line_for(summary, rule.meter_id)
        if line is None or not line.allowance:
            return None
        # ceil(allowance x percent / 100), in integers (both are integers).
        threshold = -(-line.allowance * rule.threshold_percent // 100)
        projected = rule.kind == Kind.PROJECTED_USAGE_SHARE
        observed = line.projection.projected if projected else line.usage
        return observed, threshold, line, projected, 0
    if rule.currency != summary.currency:
        return None
    projected = rule.kind == Kind.PROJECTED_SPEND
    usage_cost = summary.projected_usage_cost[1] if projected else summary.usage_cost_so_far
    # = spend_so_far(summary) when not projected
    return summary.base_fee + usage_cost, rule.amount, None, projected, usage_cost


def alert_crossed(*, rule: AlertRule, summary: PeriodSummary) -> bool:
    """Whether :func:`alert_check` would answer "crossed", without its text (the sweep
    asks this of every rule of every account, and builds the check of the few crossed)."""
    measured = _measure(rule, summary)
    return measured is not None and measured[0] >= measured[1]


def alert_check(*, rule: AlertRule, summary: PeriodSummary) -> Check | None:
    """Whether the rule's threshold is crossed in this summary (None: not applicable)."""
    measured = _measure(rule, summary)
    if measured is None:
        return None
    observed, threshold, line, projected, usage_cost = measured
    if line is not None:
        # Floored: a crossed rule never reads as less than its threshold, and 13,707 of
        # 10,000 is "137%", not the rule's "100%".
        share = observed * 100 // line.allowance
        text = (
            f"{line.meter.display_name}: {'projected to reach' if projected else 'reached'} "
            f"{quantity_text(observed, line.meter.unit_label)}, {share}% of the "
            f"{line.allowance:,} included (alert at {rule.threshold_percent}%)"
        )
    else:
        money = summary.currency
        text = (
            f"Spend {'projected to reach' if projected else 'reached'} "
            f"{format_money(observed, money)} this period = "
            f"{spend_breakdown_text(base_fee=summary.base_fee, usage=usage_cost, currency=money)}"
            f" (alert at {format_money(threshold, money)})"
        )
    return Check(
        rule=rule,
        observed=observed,
        threshold=threshold,
        crossed=observed >= threshold,
        summary=text,
    )


def alert_recipients(*, account: Account, kind: str | None = None) -> list[str]:
    """Who an alert of ``kind`` (a rule's kind, or ``"budget"`` for a budget's warn
    level) is e-mailed to: each member who receives alerts and has not muted the kind
    (their own choice, on the Members page). Viewers only while the operator lets them
    see amounts (``BILLING_VIEWERS_SEE_AMOUNTS``): every alert e-mail states the spend.
    An account with no member that has an e-mail address: its billing e-mail. Members
    exist but none receives this kind: nobody (the delivery is still recorded)."""
    memberships = [m for m in account.memberships.select_related("user") if m.user.email]
    if not memberships:
        return [account.billing_email]
    viewers_see_amounts = settings.BILLING_VIEWERS_SEE_AMOUNTS
    return sorted(
        {
            m.user.email
            for m in memberships
            if m.receives_alerts
            and (kind is None or kind not in (m.muted_alert_kinds or ()))
            and (viewers_see_amounts or m.role in BILLING_ROLES)
        }
    )


DeliveryKey = tuple[int, int | None, int | None, int, datetime]


def rule_delivery_key(account_id: int, rule_id: int, period_start: datetime) -> DeliveryKey:
    """A rule alerts at the one level 100."""
    return (account_id, rule_id, None, RULE_LEVEL, period_start)


def budget_delivery_key(
    account_id: int, budget_id: int, level: int, period_start: datetime
) -> DeliveryKey:
    return (account_id, None, budget_id, level, period_start)


def alert_deliveries_for_periods(
    *, account_ids: Iterable[int], period_starts: Iterable[datetime]
) -> dict[DeliveryKey, AlertDelivery]:
    """Deliveries claimed for these accounts and periods, sent or still pending, keyed by
    (account id, rule id, budget id, level, period start) as the unique constraints are
    (see ``rule_delivery_key`` / ``budget_delivery_key``). Deliveries a budget raise
    resolved (detached from their budget, see ``usage.services.budget_alerts``) are not
    listed: they no longer hold their level."""
    return {
        (d.account_id, d.rule_id, d.budget_id, d.level, d.period_start): d
        for d in AlertDelivery.objects.filter(
            ids_condition(AlertDelivery, "account_id", account_ids),
            period_start__in=set(period_starts),
        ).filter(Q(rule__isnull=False) | Q(budget__isnull=False))
    }


def alerts_sent_this_period(*, account: Account, period_start: datetime) -> QuerySet:
    """The alerts whose e-mail went out this period (a pending retry is not listed)."""
    return AlertDelivery.objects.filter(
        account=account, period_start=period_start, sent_at__isnull=False
    )
