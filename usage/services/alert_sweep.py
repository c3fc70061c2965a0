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

from django.db import connection

from billing.models import Account
from billing.models_credits import AutoTopUp
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.models_sweep import SweepTouch, SweepWatermark
from usage.selectors.id_arrays import ids_condition, int_array, timestamp_array

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


# PostgreSQL: the decision in SQL ---------------------------------------------------------
#
# On PostgreSQL the digest is computed by the database, from the same inputs as
# :func:`sweep_inputs_digest` (md5 of their text, not blake2b of their repr: a database
# only ever compares digests it wrote itself), so that skipping an unchanged account
# costs no Python at all: one statement per chunk answers which accounts are due
# (:func:`sweep_due`), and one more per evaluated chunk the digests to record
# (:func:`sweep_digests`), both through ``_INPUTS_SQL``. Elsewhere (SQLite)
# :class:`ChunkInputs` decides in Python.

# Per account of ``q`` (account_id, period_start, recorded digest or NULL without a
# watermark): the digest of its inputs for that period, whether anything time-driven
# concerns it (``time_driven``), and its touch rows. Set-based: each input table is read
# once for the chunk and aggregated per account (hash joins), nothing per account.
_INPUTS_SQL = """
WITH q AS MATERIALIZED ({q}),
subs AS (
    SELECT c.subscriber_id AS account_id,
           string_agg(s.id || '@' || s.djstripe_updated::text, ','
                      ORDER BY s.id, s.djstripe_updated) AS text
    FROM q JOIN djstripe_customer c ON c.subscriber_id = q.account_id
    JOIN djstripe_subscription s ON s.customer_id = c.id
    GROUP BY 1
),
rules AS (
    SELECT r.account_id,
           string_agg(format('%%s:%%s:%%s:%%s:%%s:%%s:%%s', r.id, r.kind, r.meter_id,
                             r.threshold_percent, r.amount, r.currency, r.is_default),
                      ',' ORDER BY r.id) AS text,
           bool_or(r.kind = ANY(%s::text[]) AND NOT EXISTS (
               SELECT 1 FROM usage_alertdelivery d
               WHERE d.account_id = r.account_id AND d.rule_id = r.id
                 AND d.period_start = q.period_start)) AS unsent_time_driven
    FROM q JOIN usage_alertrule r ON r.account_id = q.account_id
    GROUP BY 1
),
budgets AS (
    SELECT b.account_id,
           string_agg(format('%%s:%%s:%%s:%%s:%%s:%%s', b.id, b.kind, b.meter_id, b."limit",
                             lower(b.currency), b.warn_levels::text),
                      ',' ORDER BY b.id) AS text
    FROM q JOIN usage_budget b ON b.account_id = q.account_id
    GROUP BY 1
),
deliveries AS (
    SELECT d.account_id,
           string_agg(format('%%s:%%s:%%s:%%s:%%s', d.id, d.rule_id, d.budget_id, d.level,
                             d.sent_at IS NOT NULL),
                      ',' ORDER BY d.id) AS text,
           bool_or(d.sent_at IS NULL) AS pending
    FROM q JOIN usage_alertdelivery d
      ON d.account_id = q.account_id AND d.period_start = q.period_start
    WHERE d.rule_id IS NOT NULL OR d.budget_id IS NOT NULL
    GROUP BY 1
),
touches AS (
    SELECT t.account_id, array_agg(t.id ORDER BY t.id) AS ids
    FROM q JOIN usage_sweeptouch t ON t.account_id = q.account_id
    GROUP BY 1
),
top_ups AS (
    SELECT DISTINCT t.account_id
    FROM q JOIN billing_autotopup t ON t.account_id = q.account_id
    WHERE t.enabled
),
decided AS (
    SELECT q.account_id, q.inputs,
           md5(concat(subs.text, '|', rules.text, '|', budgets.text, '|', deliveries.text))
               AS digest,
           (top_ups.account_id IS NOT NULL OR coalesce(deliveries.pending, false)
            OR coalesce(rules.unsent_time_driven, false)) AS time_driven,
           touches.ids AS touches
    FROM q
    LEFT JOIN subs ON subs.account_id = q.account_id
    LEFT JOIN rules ON rules.account_id = q.account_id
    LEFT JOIN budgets ON budgets.account_id = q.account_id
    LEFT JOIN deliveries ON deliveries.account_id = q.account_id
    LEFT JOIN touches ON touches.account_id = q.account_id
    LEFT JOIN top_ups ON top_ups.account_id = q.account_id
)
SELECT account_id, digest, time_driven, touches FROM decided
"""
_WATERMARKED = """
SELECT a.id AS account_id, w.period_start, w.inputs
FROM unnest(%s::bigint[]) AS a(id)
LEFT JOIN usage_sweepwatermark w ON w.account_id = a.id
"""
_GIVEN = """
SELECT a.id AS account_id, a.period_start, NULL::varchar AS inputs
FROM unnest(%s::bigint[], %s::timestamptz[]) AS a(id, period_start)
"""
_DUE = """
WHERE inputs IS NULL OR inputs = '' OR touches IS NOT NULL OR time_driven
   OR inputs <> digest
"""


def decided_in_sql() -> bool:
    """Whether the sweep decides and digests in SQL (PostgreSQL)."""
    return connection.vendor == "postgresql"


_TIME_DRIVEN = "{" + ",".join(sorted(TIME_DRIVEN_KINDS)) + "}"


class Due(NamedTuple):
    """The accounts of a chunk a sweep evaluates, and the touch rows read for them."""

    account_ids: list[int]
    touches: dict[int, list[int]]


def sweep_due(*, account_ids: list[int], everyone: bool = False) -> Due:
    """PostgreSQL: which of ``account_ids`` are due (see the module docstring), in one
    statement; ``everyone``: all of them (the touch rows are read either way)."""
    sql = _INPUTS_SQL.format(q=_WATERMARKED) + ("" if everyone else _DUE)
    with connection.cursor() as cursor:
        cursor.execute(sql, [int_array(account_ids), _TIME_DRIVEN])
        rows = cursor.fetchall()
    due = sorted(a for a, _, _, _ in rows)
    return Due(due, {a: list(t) for a, _, _, t in rows if t})


def sweep_digests(*, periods: Mapping[int, datetime | None]) -> dict[int, tuple[str, bool]]:
    """PostgreSQL: ``{account id: (digest, time-driven)}`` of each account's inputs for
    the period starting at ``periods[account id]`` (None: no period), one statement.
    Read before the evaluation reads its inputs: a digest older than what the evaluation
    read only makes the next sweep evaluate the account again, never skip it."""
    if not periods:
        return {}
    ids = list(periods)
    starts = timestamp_array(periods[a] for a in ids)
    with connection.cursor() as cursor:
        cursor.execute(_INPUTS_SQL.format(q=_GIVEN), [int_array(ids), starts, _TIME_DRIVEN])
        return {a: (digest, driven) for a, digest, driven, _ in cursor.fetchall()}


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
    if decided_in_sql():
        ids = sorted(digests)
        with connection.cursor() as cursor:
            cursor.execute(
                _RECORD_SQL,
                [
                    now,
                    int_array(ids),
                    "{" + ",".join(f'"{digests[a][0]}"' for a in ids) + "}",
                    timestamp_array(digests[a][1] for a in ids),
                ],
            )
        return len(ids)
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


# The upsert of ``sweep_watermarks_record`` on PostgreSQL, from arrays (no instances).
_RECORD_SQL = """
INSERT INTO usage_sweepwatermark (account_id, inputs, period_start, evaluated_at)
SELECT a, i, p, %s
FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[]) AS w(a, i, p)
ON CONFLICT (account_id) DO UPDATE
SET inputs = EXCLUDED.inputs, period_start = EXCLUDED.period_start,
    evaluated_at = EXCLUDED.evaluated_at
"""


def sweep_touches_consume(*, touch_ids: Iterable[int]) -> int:
    """Delete exactly the touch rows an evaluation saw (read before its usage)."""
    ids = list(touch_ids)
    if not ids:
        return 0
    return SweepTouch.objects.filter(ids_condition(SweepTouch, "id", ids)).delete()[0]


def sweep_touches_orphans_delete() -> int:
    """Touch rows of accounts that no longer exist (their rollups were deleted with
    them, and the delete trigger recorded it): nothing will ever read them."""
    return SweepTouch.objects.exclude(account_id__in=Account.objects.values("pk")).delete()[0]
