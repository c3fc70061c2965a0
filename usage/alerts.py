"""Threshold alerts: rules per account, evaluated against the period summary, each sent
once per (account, rule, period) — the database constraint decides, not the caller.

Rules compare, for the current period:
- ``usage_share``: usage so far against ``threshold_percent`` of the meter's allowance;
- ``projected_usage_share``: the projected usage at period end against the same;
- ``spend``: the base fee plus usage charges so far against ``amount``;
- ``projected_spend``: the base fee plus projected usage charges against ``amount``.
"""

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import Account, Meter
from billing.money import format_money
from billing.selectors import BILLING_ROLES
from billing.subscription_state import SubscriptionState, subscription_state_for_account
from usage.models import AlertDelivery, AlertRule
from usage.period_summaries import period_summaries_for_accounts
from usage.period_summary import MeterLine, PeriodSummary, period_summary

logger = logging.getLogger(__name__)
Kind = AlertRule.Kind
DEFAULT_SHARES = (80, 100)


@dataclass(frozen=True)
class Check:
    rule: AlertRule
    observed: int
    threshold: int
    crossed: bool
    summary: str


def alert_rules_ensure_defaults(*, account: Account, state: SubscriptionState) -> int:
    """80% and 100% of every allowance the plan includes; returns how many were added."""
    added = 0
    for item in state.metered_items:
        if not item.included_units:
            continue
        for share in DEFAULT_SHARES:
            _, created = AlertRule.objects.get_or_create(
                account=account,
                kind=Kind.USAGE_SHARE,
                meter=item.meter,
                threshold_percent=share,
                defaults={"is_default": True},
            )
            added += created
    return added


def alert_rule_create(
    *,
    account: Account,
    kind: str,
    meter: Meter | None = None,
    threshold_percent: int | None = None,
    amount: int | None = None,
    currency: str = "",
) -> AlertRule:
    """Validate and store a rule; errors name the field."""
    errors: dict[str, str] = {}
    if kind not in Kind.values:
        errors["kind"] = "Choose what the alert watches."
    elif kind in AlertRule.USAGE_KINDS:
        state = subscription_state_for_account(account=account)
        allowances = {i.meter.pk: i.included_units for i in (state.metered_items if state else ())}
        if meter is None:
            errors["meter"] = "Choose a meter."
        elif not allowances.get(meter.pk):
            errors["meter"] = f"{meter.display_name} has no included allowance on your plan."
        if threshold_percent is None or not 1 <= threshold_percent <= 1000:
            errors["threshold_percent"] = "Enter a share between 1% and 1000%."
        amount, currency = None, ""
    else:
        if amount is None or amount <= 0:
            errors["amount"] = "Enter an amount above zero."
        if len(currency) != 3:
            errors["amount"] = "The account has no billing currency yet."
        meter, threshold_percent = None, None
    if errors:
        raise ValidationError(errors)
    rule, _ = AlertRule.objects.get_or_create(
        account=account,
        kind=kind,
        meter=meter,
        threshold_percent=threshold_percent,
        amount=amount,
        currency=currency.lower(),
    )
    return rule


def alert_rule_delete(*, account: Account, rule_id: int) -> bool:
    deleted, _ = AlertRule.objects.filter(account=account, pk=rule_id).delete()
    return bool(deleted)


def _line_for(summary: PeriodSummary, meter_id: int | None) -> MeterLine | None:
    return next((line for line in summary.lines if line.meter.pk == meter_id), None)


def alert_check(*, rule: AlertRule, summary: PeriodSummary) -> Check | None:
    """Whether the rule's threshold is crossed in this summary (None: not applicable)."""
    money = summary.currency
    if rule.kind in AlertRule.USAGE_KINDS:
        line = _line_for(summary, rule.meter_id)
        if line is None or not line.allowance:
            return None
        threshold = int(
            (Decimal(line.allowance) * rule.threshold_percent / 100).to_integral_value(
                rounding=ROUND_CEILING
            )
        )
        projected = rule.kind == Kind.PROJECTED_USAGE_SHARE
        observed = line.projection.projected if projected else line.usage
        unit = line.meter.unit_label
        text = (
            f"{line.meter.display_name}: {'projected to reach' if projected else 'reached'} "
            f"{observed:,} {unit}s, {rule.threshold_percent}% of the {line.allowance:,} included"
        )
    else:
        if rule.currency != money:
            return None
        projected = rule.kind == Kind.PROJECTED_SPEND
        usage_cost = summary.projected_usage_cost[1] if projected else summary.usage_cost_so_far
        observed = summary.base_fee + usage_cost
        threshold = rule.amount
        text = (
            f"Spend {'projected to reach' if projected else 'reached'} "
            f"{format_money(observed, money)} this period "
            f"(alert at {format_money(threshold, money)})"
        )
    return Check(
        rule=rule,
        observed=observed,
        threshold=threshold,
        crossed=observed >= threshold,
        summary=text,
    )


def _recipients(account: Account) -> list[str]:
    emails = sorted(
        {
            m.user.email
            for m in account.memberships.select_related("user").filter(role__in=BILLING_ROLES)
            if m.user.email
        }
    )
    return emails or [account.billing_email]


def _send(*, account: Account, check: Check, summary: PeriodSummary, recipients: list[str]):
    context = {
        "account": account,
        "check": check,
        "summary": summary,
        "dashboard_url": f"{settings.SITE_URL}{reverse('dashboards:home')}",
        "alerts_url": f"{settings.SITE_URL}{reverse('dashboards:alerts')}",
    }
    message = EmailMultiAlternatives(
        subject=f"[Meterdesk] {account.name}: {check.summary}"[:200],
        body=render_to_string("usage/email/alert.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(render_to_string("usage/email/alert.html", context), "text/html")
    message.send(fail_silently=False)


def _deliver(*, account: Account, check: Check, summary: PeriodSummary) -> AlertDelivery | None:
    """Claim (account, rule, period) with an INSERT, send, commit. A concurrent or later
    evaluation's INSERT conflicts and sends nothing; a failed send rolls the claim back so
    the next evaluation tries again."""
    recipients = _recipients(account)
    try:
        with transaction.atomic():
            delivery = AlertDelivery.objects.create(
                account=account,
                rule=check.rule,
                period_start=summary.period_start,
                period_end=summary.period_end,
                summary=check.summary[:300],
                observed=check.observed,
                threshold=check.threshold,
                recipients=", ".join(recipients),
                sent_at=timezone.now(),
            )
            _send(account=account, check=check, summary=summary, recipients=recipients)
    except IntegrityError:
        return None  # already sent for this period
    return delivery


def alerts_evaluate_account(*, account: Account, now: datetime | None = None) -> list:
    """Evaluate every rule of the account for the current period; returns what was sent."""
    state = subscription_state_for_account(account=account)
    if state is None:
        return []
    alert_rules_ensure_defaults(account=account, state=state)
    summary = period_summary(account=account, state=state, now=now)
    if summary.closed:
        return []
    already = set(
        AlertDelivery.objects.filter(
            account=account, period_start=summary.period_start
        ).values_list("rule_id", flat=True)
    )
    sent = []
    for rule in AlertRule.objects.filter(account=account).select_related("meter"):
        if rule.pk in already:
            continue
        check = alert_check(rule=rule, summary=summary)
        if check is not None and check.crossed:
            delivery = _deliver(account=account, check=check, summary=summary)
            if delivery is not None:
                sent.append(delivery)
    return sent


def _default_rules(account_id: int, state: SubscriptionState) -> list[AlertRule]:
    return [
        AlertRule(
            account_id=account_id,
            kind=Kind.USAGE_SHARE,
            meter=item.meter,
            threshold_percent=share,
            is_default=True,
        )
        for item in state.metered_items
        if item.included_units
        for share in DEFAULT_SHARES
    ]


def _rules_by_account(summaries: dict[int, PeriodSummary]) -> dict[int, list[AlertRule]]:
    """The chunk's rules, after adding missing default rules in one statement."""

    def load():
        rules: dict[int, list[AlertRule]] = {}
        for rule in AlertRule.objects.filter(account_id__in=list(summaries)):
            rules.setdefault(rule.account_id, []).append(rule)
        return rules

    rules = load()
    have = {
        (r.account_id, r.meter_id, r.threshold_percent)
        for account_rules in rules.values()
        for r in account_rules
        if r.is_default
    }
    missing = [
        rule
        for account_id, summary in summaries.items()
        for rule in _default_rules(account_id, summary.state)
        if (account_id, rule.meter_id, rule.threshold_percent) not in have
    ]
    if missing:
        AlertRule.objects.bulk_create(missing, ignore_conflicts=True)
        rules = load()
    return rules


def alerts_evaluate_all(*, now: datetime | None = None, chunk_size: int = 200) -> int:
    """The beat task's sweep over every account with a live subscription.

    Set-based: each chunk of accounts costs a constant number of queries (summaries in
    bulk, rules, this period's deliveries); only a crossed rule takes the per-account
    path that claims the delivery row and sends the email."""
    now = now or timezone.now()
    account_ids = list(
        Account.objects.filter(djstripe_customers__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    sent = 0
    for offset in range(0, len(account_ids), chunk_size):
        accounts = Account.objects.in_bulk(account_ids[offset : offset + chunk_size])
        summaries = period_summaries_for_accounts(accounts=list(accounts.values()), now=now)
        rules = _rules_by_account(summaries)
        delivered = set(
            AlertDelivery.objects.filter(
                account_id__in=list(summaries),
                period_start__in={summary.period_start for summary in summaries.values()},
            ).values_list("account_id", "rule_id", "period_start")
        )
        for account_id, summary in summaries.items():
            try:
                for rule in rules.get(account_id, ()):
                    if (account_id, rule.pk, summary.period_start) in delivered:
                        continue
                    check = alert_check(rule=rule, summary=summary)
                    if check is not None and check.crossed:
                        sent += (
                            _deliver(account=accounts[account_id], check=check, summary=summary)
                            is not None
                        )
            except Exception:  # one account's failure must not stop the sweep
                logger.exception("alert evaluation failed for account %s", account_id)
    return sent


# account id -> when this process last asked the shared cache to schedule it.
_recently_scheduled: dict[int, float] = {}


def alerts_schedule_evaluation(*, account_ids, debounce_seconds: int = 5) -> int:
    """After ingestion: queue one evaluation per account at most every few seconds, after
    the ingesting transaction commits. A cache key debounces across processes; a memo
    in this process spares the cache a round trip per batch for an account it asked
    about within the window."""
    from usage.tasks import evaluate_account_alerts

    now = time.monotonic()
    queued = 0
    for account_id in set(account_ids):
        if debounce_seconds > 0:
            if now - _recently_scheduled.get(account_id, -math.inf) < debounce_seconds:
                continue
            _recently_scheduled[account_id] = now
            if not cache.add(f"alerts:scheduled:{account_id}", 1, timeout=debounce_seconds):
                continue
        transaction.on_commit(partial(evaluate_account_alerts.delay, account_id))
        queued += 1
    return queued


def alerts_sent_this_period(*, account: Account, period_start: datetime):
    return AlertDelivery.objects.filter(account=account, period_start=period_start)
