"""The sweep's steady-state skip (issue 19): which accounts of a chunk a sweep must
evaluate, and the watermark it records for those it evaluated.

An evaluation (``usage.services.alerts``) is a function of what it reads: the account's
subscription state (period, prices, quantities, allowances), its usage this period, its
rules, its budgets, and this period's deliveries (which alerts exist and whether their
e-mail went out). Except where time alone changes the answer, the same inputs give the
same outcome. Per chunk, with a constant number of light queries and no pricing:

- **usage**: every write to an account's rollups, by any code path, adds a
  ``SweepTouch`` row in the writer's transaction (database triggers,
  ``usage.sweep_triggers``); an account with a touch row is evaluated, and the rows
  read before its evaluation read usage are deleted after it;
- **everything else**: a digest (:func:`sweep_inputs_digest`) of the mirrored
  subscriptions' stamps (``billing.mirror.subscription_stamps``), the rules, the budgets
  and this period's deliveries, compared with the one recorded by the account's last
  evaluation that claimed and retried nothing (``SweepWatermark.inputs``).

Never skipped (time-driven, :func:`time_driven`): a projected rule (usage or spend)
whose alert this period has not gone out (projections move with the clock), a credit
rule not yet sent or an enabled automatic top-up (the live balance moves with grants and
time), and any pending delivery of this period (its e-mail is retried). Period rollover
is a save of the mirrored subscription (a new stamp); ended periods are resolved by the
sweep's one UPDATE before any chunk; an account whose period has ended and whose mirror
has not heard of the next one evaluates to nothing, so skipping it is the same. Rules
or budgets added, edited or deleted, a delivery deleted (which re-arms an alert): a new
digest.

Every account evaluated without an error gets its watermark written: the digest read
before the evaluation when it claimed and retried nothing and is not time-driven, else
an empty one (evaluate next time). So whenever the inputs hash to a recorded digest and
no touch is pending, a full evaluation would again claim and retry nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from billing.models import Account
from billing.models_credits import AutoTopUp
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.models_sweep import SweepTouch, SweepWatermark

Kind = AlertRule.Kind
# Rules whose answer changes with the clock (projections) or with the live credit balance.
TIME_DRIVEN_KINDS = frozenset(
    {Kind.PROJECTED_USAGE_SHARE, Kind.PROJECTED_SPEND, *AlertRule.CREDIT_KINDS}
)


def _rule_key(r) -> tuple:
    return (r.pk, r.kind, r.meter_id, r.threshold_percent, r.amount, r.currency, r.is_default)


def _budget_key(b) -> tuple:
    levels = tuple(sorted(int(level) for level in b.warn_levels or ()))
    return (b.pk, b.kind, b.meter_id, b.limit, b.currency.lower(), levels)


def _delivery_key(d) -> tuple:
    return (d.pk, d.rule_id, d.budget_id, d.level, d.sent_at is not None)


def sweep_inputs_digest(
    *, subscriptions: tuple, rules: Iterable, budgets: Iterable, deliveries: Iterable
) -> str:
    """The digest of what an evaluation reads besides usage and the clock: the
    subscriptions' stamps, the rules, the budgets and this period's deliveries (model
    instances, or the ``*Row`` tuples of the same attributes)."""
    parts = (
        tuple((sid, updated.isoformat()) for sid, updated in subscriptions),
        tuple(sorted(map(_rule_key, rules))),
        tuple(sorted(map(_budget_key, budgets))),
        tuple(sorted(map(_delivery_key, deliveries))),
    )
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def time_driven(*, rules: Iterable, deliveries: Iterable, has_top_up: bool) -> bool:
    """Whether the account's evaluation could answer differently with time alone (see
    the module docstring): then the sweep evaluates it whatever its digest.
    ``deliveries``: this period's."""
    deliveries = list(deliveries)
    if has_top_up or any(d.sent_at is None for d in deliveries):
        return True
    sent_rules = {d.rule_id for d in deliveries if d.rule_id is not None}
    return any(r.kind in TIME_DRIVEN_KINDS and r.pk not in sent_rules for r in rules)


class RuleRow(NamedTuple):
    pk: int
    account_id: int
    kind: str
    meter_id: int | None
    threshold_percent: int | None
    amount: int | None
    currency: str
    is_default: bool


class BudgetRow(NamedTuple):
    pk: int
    account_id: int
    kind: str
    meter_id: int | None
    limit: int
    currency: str
    warn_levels: list


class DeliveryRow(NamedTuple):
    pk: int
    account_id: int
    rule_id: int | None
    budget_id: int | None
    level: int
    sent_at: datetime | None
    period_start: datetime


class ChunkInputs:
    """What the skip decision reads for a chunk of accounts: the watermarks, the touch
    rows, the rules, the budgets, the deliveries of the recorded periods and the enabled
    automatic top-ups (six light queries, rows as tuples; the caller passes the
    subscription stamps). The evaluation reads its own rules and budgets again."""

    def __init__(self, *, account_ids: list[int], subscriptions: Mapping[int, tuple]):
        ids = list(account_ids)
        self.subscriptions = subscriptions
        self.watermarks = {
            account_id: (digest, start)
            for account_id, digest, start in SweepWatermark.objects.filter(
                account_id__in=ids
            ).values_list("account_id", "inputs", "period_start")
        }
        self.touches: dict[int, list[int]] = {}
        for pk, account_id in SweepTouch.objects.filter(account_id__in=ids).values_list(
            "pk", "account_id"
        ):
            self.touches.setdefault(account_id, []).append(pk)
        self.rules = _grouped(AlertRule.objects.filter(account_id__in=ids), RuleRow)
        self.budgets = _grouped(Budget.objects.filter(account_id__in=ids), BudgetRow)
        starts = {start for _, start in self.watermarks.values() if start is not None}
        self.deliveries = {
            account_id: [d for d in rows if d.period_start == self.watermarks[account_id][1]]
            for account_id, rows in _grouped(
                AlertDelivery.objects.filter(account_id__in=ids, period_start__in=starts).exclude(
                    rule__isnull=True, budget__isnull=True
                ),
                DeliveryRow,
            ).items()
        }
        self.top_ups = set(
            AutoTopUp.objects.filter(account_id__in=ids, enabled=True).values_list(
                "account_id", flat=True
            )
        )

    def digest(self, account_id: int) -> str:
        return sweep_inputs_digest(
            subscriptions=self.subscriptions.get(account_id, ()),
            rules=self.rules.get(account_id, ()),
            budgets=self.budgets.get(account_id, ()),
            deliveries=self.deliveries.get(account_id, ()),
        )

    def time_driven(self, account_id: int) -> bool:
        return time_driven(
            rules=self.rules.get(account_id, ()),
            deliveries=self.deliveries.get(account_id, ()),
            has_top_up=account_id in self.top_ups,
        )

    def due(self, account_id: int) -> bool:
        """Whether the sweep must evaluate the account (see the module docstring)."""
        recorded = self.watermarks.get(account_id)
        return (
            recorded is None
            or not recorded[0]
            or account_id in self.touches
            or self.time_driven(account_id)
            or recorded[0] != self.digest(account_id)
        )


def _grouped(queryset, row: type[NamedTuple]) -> dict[int, list]:
    """The rows as ``row`` tuples (named like the model's attributes), per account."""
    names = ["id" if f == "pk" else f for f in row._fields]
    rows: dict[int, list] = {}
    for values in queryset.order_by().values_list(*names):
        item = row(*values)
        rows.setdefault(item.account_id, []).append(item)
    return rows


def sweep_watermarks_record(
    *, digests: Mapping[int, tuple[str, datetime | None]], now: datetime
) -> int:
    """Record (account id -> (digest or "", period start)) in one statement."""
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


def sweep_touches_consume(*, touch_ids: Iterable[int]) -> int:
    """Delete exactly the touch rows an evaluation saw (read before its usage)."""
    ids = list(touch_ids)
    return SweepTouch.objects.filter(pk__in=ids).delete()[0] if ids else 0


def sweep_touches_orphans_delete() -> int:
    """Touch rows of accounts that no longer exist (their rollups were deleted with
    them, and the delete trigger recorded it): nothing will ever read them."""
    return SweepTouch.objects.exclude(account_id__in=Account.objects.values("pk")).delete()[0]
