"""Threshold alerts: rules per account, evaluated against the period summary, each sent
once per (account, rule, period) — the database constraint decides, not the caller. The
same evaluations (one account after ingestion, the sweep) also alert budget warn levels
(``usage.services.budget_alerts``) and resolve alerts of ended periods
(``usage.services.alert_resolution``).

Rules compare, for the current period:
- ``usage_share``: usage so far against ``threshold_percent`` of the meter's allowance;
- ``projected_usage_share``: the projected usage at period end against the same;
- ``spend``: the base fee plus usage charges so far against ``amount``;
- ``projected_spend``: the base fee plus projected usage charges against ``amount``;
- ``credits_below``: the live remaining credit balance below ``amount``;
- ``credits_run_out``: the credits projected to run out before the period ends.

The credit rules read the live credit balance (``usage.selectors.credit_balance``),
computed only for accounts with a credit rule or an automatic top-up, which the same
evaluation buys when the balance falls below its threshold
(``usage.services.credit_alerts``).

Delivery (``usage.services.alert_delivery``): an evaluation claims (account, rule, level
100, period) by inserting the delivery row and its channel deliveries (webhooks, Slack);
the e-mail and channels go out only after that row commits (``transaction.on_commit``),
so a rolled-back transaction sends nothing. The row records ``sent_at`` once the e-mail
went out; a failed send leaves it pending and the next evaluation that still finds the
rule crossed retries it. ``lease_until`` keeps two workers from sending the same pending
delivery at once.
"""

import logging
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from django.core.exceptions import ValidationError
from django.db import router
from django.utils import timezone

from billing.mirror.customers import accounts_with_stripe_customer
from billing.mirror.subscription_stamps import subscription_stamps_for_accounts
from billing.mirror.subscriptions import (
    SubscriptionState,
    subscription_state_for_account,
    subscription_states_for_accounts,
)
from billing.models import Account, Meter
from usage.alert_email import alert_email_send
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.selectors.alerts import (
    RULE_LEVEL,
    Check,
    alert_check,
    alert_crossed,
    alert_deliveries_for_periods,
    alert_recipients,
    rule_delivery_key,
)
from usage.selectors.budgets import budget_statuses_from_summaries
from usage.selectors.id_arrays import ids_condition
from usage.selectors.rollups import rollup_values
from usage.selectors.summaries import (
    period_summaries_for_accounts,
    period_summary,
    summaries_read_projections,
)
from usage.selectors.summary_lines import PeriodSummary
from usage.services.alert_channels import AlertFacts
from usage.services.alert_delivery import (
    alert_claim,
    alert_email_after_commit,
    alert_email_deliver,
)
from usage.services.alert_resolution import alerts_resolve_ended_periods
from usage.services.alert_sweep import (
    ChunkInputs,
    decided_in_sql,
    sweep_digests,
    sweep_due,
    sweep_inputs_digest,
    sweep_touches_consume,
    sweep_touches_orphans_delete,
    sweep_watermarks_record,
    time_driven,
)
from usage.services.budget_alerts import budget_alerts_evaluate
from usage.services.credit_alerts import (
    credit_accounts_needing_balance,
    credit_alert_check,
    credit_balance_evaluate,
)

logger = logging.getLogger(__name__)
Kind = AlertRule.Kind
DEFAULT_SHARES = (80, 100)
# Accounts read at a time by the sweep's skip decision (IN lists only, no OR-ed ranges).
SCAN_CHUNK = 2000
# Accounts evaluated at a time, by whether the sweep decides in SQL (PostgreSQL: array
# parameters) or not (SQLite: the usage read ORs one range condition per distinct
# period, within SQLite's expression depth).
EVALUATION_CHUNK = {True: 500, False: 200}
# Rules that read the projection (credit rules through the credit balance's run-out).
PROJECTING = frozenset({Kind.PROJECTED_USAGE_SHARE, Kind.PROJECTED_SPEND, *AlertRule.CREDIT_KINDS})


# Rules ---------------------------------------------------------------------------------


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
    elif kind == Kind.CREDITS_RUN_OUT:
        if len(currency) != 3:
            errors["kind"] = "The account has no billing currency yet."
        meter, threshold_percent, amount = None, None, None
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


# The sweep reads rules as tuples of their columns (an AlertRule instance cost ~20 us to
# build, two per account); a crossed rule becomes the instance it would have been
# (``from_db``) before its delivery is claimed.
_RULE_COLUMNS = tuple(f.attname for f in AlertRule._meta.concrete_fields)


class RuleRow(namedtuple("RuleRow", _RULE_COLUMNS)):
    """An ``AlertRule`` row: its columns by attribute name, and ``pk``."""

    __slots__ = ()

    @property
    def pk(self) -> int:
        return self.id

    def instance(self) -> AlertRule:
        """The instance a query would have returned (read from where rules are read)."""
        return AlertRule.from_db(router.db_for_read(AlertRule), _RULE_COLUMNS, tuple(self))


def _as_instance(rule) -> AlertRule:
    return rule.instance() if isinstance(rule, RuleRow) else rule


def _rules_by_account(states: dict[int, SubscriptionState]) -> dict[int, list[RuleRow]]:
    """The chunk's rules (rows, in the model's order), after adding missing default
    rules in one statement."""

    def load():
        rules: dict[int, list[RuleRow]] = {}
        queryset = AlertRule.objects.filter(ids_condition(AlertRule, "account_id", states))
        for values in queryset.values_list(*_RULE_COLUMNS):
            rule = RuleRow(*values)
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
        AlertRule(
            account_id=account_id,
            kind=Kind.USAGE_SHARE,
            meter=item.meter,
            threshold_percent=share,
            is_default=True,
        )
        for account_id, state in states.items()
        for item in state.metered_items
        if item.included_units
        for share in DEFAULT_SHARES
        if (account_id, item.meter.pk, share) not in have
    ]
    if missing:
        AlertRule.objects.bulk_create(missing, ignore_conflicts=True)
        rules = load()
    return rules


# Delivery ------------------------------------------------------------------------------


def _facts(check: Check, summary: PeriodSummary) -> AlertFacts:
    rule = check.rule
    return AlertFacts(
        summary=check.summary,
        level=RULE_LEVEL,
        used=check.observed,
        limit=check.threshold,
        currency=rule.currency if rule.kind not in AlertRule.USAGE_KINDS else "",
        period_start=summary.period_start,
        period_end=summary.period_end,
        rule=rule,
    )


def alert_delivery_send(*, delivery: AlertDelivery, check: Check, summary: PeriodSummary) -> bool:
    """Send a claimed delivery's e-mail and record ``sent_at``. Meant to run after the
    claim committed. Returns whether it sent; a failed send is logged and leaves the
    delivery pending for the next evaluation."""
    return alert_email_deliver(
        delivery=delivery,
        send=partial(
            alert_email_send,
            account=delivery.account,
            check=check,
            summary=summary,
            recipients=delivery.recipients.split(", "),
        ),
        summary=check.summary,
        observed=check.observed,
    )


def _send_after_commit(*, delivery: AlertDelivery, check: Check, summary: PeriodSummary):
    alert_email_after_commit(alert_delivery_send, delivery=delivery, check=check, summary=summary)


def alert_deliver(
    *, account: Account, check: Check, summary: PeriodSummary
) -> AlertDelivery | None:
    """Claim (account, rule, level 100, period) with an INSERT (and the alert's channel
    deliveries) and send once it commits. A concurrent or later evaluation's INSERT
    conflicts and sends nothing (None)."""
    delivery = alert_claim(
        fields={
            "account": account,
            "rule": check.rule,
            "level": RULE_LEVEL,
            "period_start": summary.period_start,
            "period_end": summary.period_end,
            "summary": check.summary[:300],
            "observed": check.observed,
            "threshold": check.threshold,
            "recipients": ", ".join(alert_recipients(account=account, kind=check.rule.kind)),
        },
        facts=_facts(check, summary),
    )
    if delivery is not None:
        _send_after_commit(delivery=delivery, check=check, summary=summary)
    return delivery


# Evaluation ----------------------------------------------------------------------------


def _unsent(deliveries: dict, account_id: int, rule_id: int, summary: PeriodSummary) -> bool:
    delivery = deliveries.get(rule_delivery_key(account_id, rule_id, summary.period_start))
    return delivery is None or delivery.sent_at is None


def _evaluate(
    *,
    account: Account,
    rules: Iterable[AlertRule],
    summary: PeriodSummary,
    deliveries: dict[tuple, AlertDelivery],
    credits=None,
    attempted: list | None = None,
) -> list[AlertDelivery]:
    """Claim each newly crossed rule and retry each pending delivery still crossed.
    ``credits``: the account's live ``CreditBalance`` (credit rules; None: no credits).
    ``attempted``: gets each rule crossed and not yet sent (claimed, retried, or lost to
    a concurrent claim), so the sweep knows the evaluation was not a no-op."""
    claimed = []
    for rule in rules:
        delivery = deliveries.get(rule_delivery_key(account.pk, rule.pk, summary.period_start))
        if delivery is not None and delivery.sent_at is not None:
            continue
        if rule.kind in AlertRule.CREDIT_KINDS:
            check = credit_alert_check(rule=rule, balance=credits)
        elif alert_crossed(rule=rule, summary=summary):
            check = alert_check(rule=rule, summary=summary)
        else:
            continue
        if check is None or not check.crossed:
            continue
        if check.rule is not (instance := _as_instance(rule)):
            check = replace(check, rule=instance)
        if attempted is not None:
            attempted.append(rule)
        if delivery is None:
            delivery = alert_deliver(account=account, check=check, summary=summary)
        else:
            delivery.account = account
            _send_after_commit(delivery=delivery, check=check, summary=summary)
        if delivery is not None:
            claimed.append(delivery)
    return claimed


def _credits(*, accounts: dict, summaries: dict[int, PeriodSummary], needing: dict) -> dict:
    """Live credit balances of the accounts that need one (``needing``: those with a
    credit rule or an enabled automatic top-up, from ``credit_accounts_needing_balance``),
    buying automatic top-ups on the way. One account's failure is logged and leaves it
    without a balance (its credit rules wait for the next evaluation), never stopping
    the others."""
    balances = {}
    for account_id, top_up in needing.items():
        if account_id not in summaries:
            continue
        try:
            balances[account_id] = credit_balance_evaluate(
                account=accounts[account_id], summary=summaries[account_id], top_up=top_up
            )
        except Exception:
            logger.exception("credit balance failed for account %s", account_id)
    return balances


def alerts_evaluate_account(*, account: Account, now: datetime | None = None) -> list:
    """Evaluate every rule of the account for the current period; returns the deliveries
    claimed or retried (their e-mails go out when the transaction commits)."""
    state = subscription_state_for_account(account=account)
    if state is None:
        return []
    alert_rules_ensure_defaults(account=account, state=state)
    alerts_resolve_ended_periods(now=now, account_ids=[account.pk])
    summary = period_summary(account=account, state=state, now=now)
    if summary.closed:
        return []
    deliveries = alert_deliveries_for_periods(
        account_ids=[account.pk], period_starts=[summary.period_start]
    )
    rules = list(AlertRule.objects.filter(account=account).select_related("meter"))
    needing = credit_accounts_needing_balance(account_ids=[account.pk], rules={account.pk: rules})
    credits = _credits(
        accounts={account.pk: account}, summaries={account.pk: summary}, needing=needing
    )
    claimed = _evaluate(
        account=account,
        rules=rules,
        summary=summary,
        deliveries=deliveries,
        credits=credits.get(account.pk),
    )
    statuses = budget_statuses_from_summaries(summaries={account.pk: summary})
    return claimed + budget_alerts_evaluate(
        account=account, statuses=statuses[account.pk], deliveries=deliveries
    )


@dataclass
class SweepStats:
    """What a sweep did: accounts with an open period, how many it evaluated and how
    many it skipped as unchanged (``accounts = evaluated + skipped``)."""

    accounts: int = 0
    evaluated: int = 0
    skipped: int = 0


def alerts_evaluate_all(
    *,
    now: datetime | None = None,
    chunk_size: int | None = None,
    skip_unchanged: bool = True,
    stats: SweepStats | None = None,
) -> int:
    """The beat task's sweep over every account with a live subscription: resolves the
    alerts of periods that ended, then evaluates rules and budget levels; returns how
    many deliveries were claimed or retried.

    Set-based: the skip decision reads ``SCAN_CHUNK`` accounts at a time, on PostgreSQL
    in one statement (``usage.services.alert_sweep.sweep_due``: nothing per skipped
    account), elsewhere with seven light queries (``ChunkInputs``); the accounts due are
    evaluated ``chunk_size`` at a time (default ``EVALUATION_CHUNK``), each chunk a
    constant number of queries (subscription states, rules, digests, budgets,
    deliveries, usage, summaries, credits, the watermark upsert and the touches
    consumed); only a crossed rule or a newly reached budget level takes the per-account
    path that claims the delivery row and sends the e-mail and channels.
    ``skip_unchanged``: skip the accounts whose inputs are those of their last no-op
    evaluation and that nothing time-driven concerns (``usage.services.alert_sweep``);
    False evaluates every one. ``stats``: filled with what the sweep did."""
    now = now or timezone.now()
    chunk_size = chunk_size or EVALUATION_CHUNK[decided_in_sql()]
    alerts_resolve_ended_periods(now=now)
    account_ids = list(
        accounts_with_stripe_customer().order_by("pk").values_list("pk", flat=True).distinct()
    )
    stats = stats if stats is not None else SweepStats()
    sent = 0
    for offset in range(0, len(account_ids), SCAN_CHUNK):
        scanned = account_ids[offset : offset + SCAN_CHUNK]
        if decided_in_sql():
            due, touches = sweep_due(account_ids=scanned, everyone=not skip_unchanged)
            inputs = None
        else:
            inputs = ChunkInputs(
                account_ids=scanned,
                subscriptions=subscription_stamps_for_accounts(account_ids=scanned),
            )
            due = [a for a in scanned if inputs.due(a)] if skip_unchanged else scanned
            touches = inputs.touches
        stats.accounts += len(scanned)
        stats.evaluated += len(due)
        stats.skipped += len(scanned) - len(due)
        for start in range(0, len(due), chunk_size):
            sent += _sweep_chunk(
                due[start : start + chunk_size], now=now, touches=touches, inputs=inputs
            )
    sweep_touches_orphans_delete()
    return sent


def _sweep_chunk(
    due: list[int], *, now: datetime, touches: dict[int, list[int]], inputs: ChunkInputs | None
) -> int:
    """Evaluate the accounts ``due`` (a constant number of queries) and write their
    watermarks: the digest of the inputs the evaluation used when it claimed and
    retried nothing and nothing time-driven concerns it, else an empty one. The digests
    come from the database (``sweep_digests``, read before the evaluation's own reads)
    or, without ``decided_in_sql``, from the rows the evaluation read (``inputs``: the
    chunk's skip decision, for the subscription stamps)."""
    states = {
        account_id: state
        for account_id, state in subscription_states_for_accounts(account_ids=due).items()
        if state.period_end > now  # an ended period evaluates to nothing
    }
    rules = _rules_by_account(states)
    digests = (
        sweep_digests(periods={a: states[a].period_start if a in states else None for a in due})
        if inputs is None
        else None
    )
    deliveries = alert_deliveries_for_periods(
        account_ids=states, period_starts={state.period_start for state in states.values()}
    )
    used: dict[int, list[AlertDelivery]] = {}
    for delivery in deliveries.values():
        if delivery.period_start == states[delivery.account_id].period_start:
            used.setdefault(delivery.account_id, []).append(delivery)
    budgets: dict[int, list[Budget]] = {}
    for budget in Budget.objects.filter(ids_condition(Budget, "account_id", states)).select_related(
        "meter"
    ):
        budgets.setdefault(budget.account_id, []).append(budget)
    meters = {i.meter.pk: i.meter for state in states.values() for i in state.metered_items}
    meters.update((b.meter_id, b.meter) for bs in budgets.values() for b in bs if b.meter_id)
    periods = {account_id: (s.period_start, s.period_end) for account_id, s in states.items()}
    usage = rollup_values(ranges=periods, meters=meters.values(), group="range")
    accounts = {a.pk: a for a in Account.objects.filter(ids_condition(Account, "id", states))}
    needing = credit_accounts_needing_balance(account_ids=list(states), rules=rules)
    summaries = period_summaries_for_accounts(
        accounts=list(accounts.values()),
        now=now,
        states=states,
        usage=usage,
        # Read together: the projections of projected and credit rules and top-ups;
        # an e-mail's (a crossing account's) on its own.
        projected={a for a, rs in rules.items() if any(r.kind in PROJECTING for r in rs)}
        | set(needing),
    )
    statuses = budget_statuses_from_summaries(
        summaries=summaries, budgets=[b for bs in budgets.values() for b in bs], usage=usage
    )
    credits = _credits(accounts=accounts, summaries=summaries, needing=needing)
    # The e-mail of a newly crossed rule shows each line's projection: read those of the
    # chunk's crossing accounts together, not two queries per e-mail.
    summaries_read_projections(
        summaries=summaries,
        account_ids=[
            a
            for a, summary in summaries.items()
            if any(
                _unsent(deliveries, a, rule.pk, summary)
                and rule.kind not in AlertRule.CREDIT_KINDS
                and alert_crossed(rule=rule, summary=summary)
                for rule in rules.get(a, ())
            )
        ],
    )
    sent, done = 0, {}
    for account_id in due:
        summary = summaries.get(account_id)
        attempted: list = []
        if summary is not None:
            try:
                sent += len(
                    _evaluate(
                        account=accounts[account_id],
                        rules=rules.get(account_id, ()),
                        summary=summary,
                        deliveries=deliveries,
                        credits=credits.get(account_id),
                        attempted=attempted,
                    )
                )
                sent += len(
                    budget_alerts_evaluate(
                        account=accounts[account_id],
                        statuses=statuses[account_id],
                        deliveries=deliveries,
                        attempted=attempted,
                    )
                )
            except Exception:  # one account's failure must not stop the sweep
                logger.exception("alert evaluation failed for account %s", account_id)
                continue
        if digests is not None:
            digest, driven = digests[account_id]
        else:
            account_rules = rules.get(account_id, [])
            driven = time_driven(
                rules=account_rules,
                deliveries=used.get(account_id, ()),
                has_top_up=needing.get(account_id) is not None,
            )
            digest = sweep_inputs_digest(
                subscriptions=inputs.subscriptions.get(account_id, ()),
                rules=account_rules,
                budgets=budgets.get(account_id, ()),
                deliveries=used.get(account_id, ()),
            )
        no_op = not attempted and not driven
        done[account_id] = (digest if no_op else "", summary.period_start if summary else None)
    sweep_watermarks_record(digests=done, now=now)
    sweep_touches_consume(touch_ids=(t for a in done for t in touches.get(a, ())))
    return sent
