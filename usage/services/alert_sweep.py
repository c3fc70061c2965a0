"""The sweep's steady-state skip (issue 19): which accounts of a chunk a sweep must
evaluate, and the watermark it records for those it evaluated to no effect.

An evaluation (``usage.services.alerts``) is a function of what it reads: the account's
subscription state (period, prices, quantities, allowances), its usage this period per
meter (the rollups, exact at the edges), its rules, its budgets, and this period's
deliveries (which alerts exist and whether their e-mail went out). Except where time
alone changes the answer, the same inputs give the same outcome. So:

- after an evaluation that found nothing to claim and nothing to retry, the sweep
  records a digest of exactly the inputs it evaluated (``SweepWatermark.inputs``);
- a later sweep reads the same inputs (a constant number of queries per chunk, no
  pricing, no projection) and skips the account when their digest is the recorded one.

Usage is compared by value, not by a "changed since" stamp: new events, a correction, a
late event in an old hour all change a meter's value (or leave it as it was, in which
case the evaluation's outcome cannot differ either), whatever path wrote the rollups.

Never skipped (time-driven, :func:`time_driven`): a projected rule (usage or spend)
whose alert this period has not gone out (projections move with the clock), a credit
rule not yet sent or an enabled automatic top-up (the live balance moves with grants and
time), and any pending delivery of this period (its e-mail is retried). Period rollover
is a new period in the state (a new digest); ended periods are resolved by the sweep's
one UPDATE before any chunk; an account whose period has ended and whose mirror has not
heard of the next one evaluates to nothing, so skipping it is the same. Rules or budgets
added, edited or deleted, a delivery deleted (which re-arms an alert): a new digest.

A watermark is written only after an evaluation that made no claim and no retry and did
not fail, from the inputs that evaluation used: whenever the inputs hash to a recorded
digest, a full evaluation would again claim and retry nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

from billing.mirror.subscriptions import SubscriptionState
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.models_sweep import SweepWatermark
from usage.selectors.alerts import rule_delivery_key
from usage.selectors.rollups import Bucket

Kind = AlertRule.Kind
# Rules whose answer changes with the clock (projections) or with the live credit balance.
TIME_DRIVEN_KINDS = frozenset(
    {Kind.PROJECTED_USAGE_SHARE, Kind.PROJECTED_SPEND, *AlertRule.CREDIT_KINDS}
)


def _state_part(state: SubscriptionState) -> tuple:
    return (
        state.subscription_id,
        state.status,
        state.period_start.isoformat(),
        state.period_end.isoformat(),
        state.currency,
        tuple(
            (
                item.item_id,
                item.price_id,
                item.quantity,
                item.included_units,
                repr(item.spec),
                item.meter.pk if item.meter is not None else None,
                item.meter.aggregation if item.meter is not None else None,
            )
            for item in state.items
        ),
    )


def sweep_inputs_digest(
    *,
    state: SubscriptionState,
    usage: Mapping[int, int],
    rules: Iterable[AlertRule],
    budgets: Iterable[Budget],
    deliveries: Iterable[AlertDelivery],
) -> str:
    """The digest of everything an evaluation of the account reads, except the clock:
    ``usage`` is the account's value per meter id this period (plan meters and budgeted
    meters), ``deliveries`` this period's (rule- or budget-held) deliveries."""
    parts = (
        _state_part(state),
        tuple(sorted(usage.items())),
        tuple(
            sorted(
                (r.pk, r.kind, r.meter_id, r.threshold_percent, r.amount, r.currency, r.is_default)
                for r in rules
            )
        ),
        tuple(
            sorted(
                (
                    b.pk,
                    b.kind,
                    b.meter_id,
                    b.limit,
                    b.currency.lower(),
                    tuple(sorted(int(level) for level in b.warn_levels or ())),
                )
                for b in budgets
            )
        ),
        tuple(
            sorted(
                (d.pk, d.rule_id, d.budget_id, d.level, d.sent_at is not None) for d in deliveries
            )
        ),
    )
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def time_driven(
    *,
    account_id: int,
    period_start: datetime,
    rules: Iterable[AlertRule],
    deliveries: Mapping[tuple, AlertDelivery],
    account_deliveries: Iterable[AlertDelivery],
    has_top_up: bool,
) -> bool:
    """Whether the account's evaluation could answer differently with time alone (see
    the module docstring): then the sweep evaluates it whatever its digest."""
    if has_top_up or any(d.sent_at is None for d in account_deliveries):
        return True
    for rule in rules:
        if rule.kind in TIME_DRIVEN_KINDS:
            sent = deliveries.get(rule_delivery_key(account_id, rule.pk, period_start))
            if sent is None or sent.sent_at is None:
                return True
    return False


def usage_by_account(values: Mapping[tuple[int, int], list[Bucket]]) -> dict[int, dict[int, int]]:
    """``rollup_values(..., group="range")`` as {account id: {meter id: value}}."""
    usage: dict[int, dict[int, int]] = {}
    for (account_id, meter_id), buckets in values.items():
        usage.setdefault(account_id, {})[meter_id] = buckets[0].value if buckets else 0
    return usage


def sweep_watermarks(*, account_ids: Iterable[int]) -> dict[int, str]:
    """The recorded digests of these accounts (one query)."""
    return dict(
        SweepWatermark.objects.filter(account_id__in=list(account_ids)).values_list(
            "account_id", "inputs"
        )
    )


def sweep_watermarks_record(*, digests: Mapping[int, tuple[str, datetime]], now: datetime) -> int:
    """Record (account id -> (digest, period start)) in one statement."""
    if not digests:
        return 0
    SweepWatermark.objects.bulk_create(
        [
            SweepWatermark(
                account_id=account_id, inputs=digest, period_start=start, evaluated_at=now
            )
            for account_id, (digest, start) in sorted(digests.items())
        ],
        update_conflicts=True,
        unique_fields=["account"],
        update_fields=["inputs", "period_start", "evaluated_at"],
    )
    return len(digests)
