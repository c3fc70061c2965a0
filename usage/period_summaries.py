"""Selectors: current-period summaries of many accounts at once, for the alert sweep.

The same numbers as :func:`usage.period_summary.period_summary` (usage exact to the
period's first second, projections from this period's days and earlier ones), with a
constant number of queries per call instead of some fifteen per account: subscription
states in bulk, daily rollup totals grouped by (account, meter, day), the partial first
hour corrected from one rollup query and one ledger query, and ``last`` meters' latest
values in two. Callers pass chunks small enough for SQLite's expression depth (the
per-account conditions are OR-ed).
"""

from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import partial, reduce
from operator import or_

from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from billing.models import Account, Meter
from billing.mirror.subscriptions import SubscriptionState, subscription_states_for_accounts
from usage.models import UsageEvent, UsageRollup
from usage.period_summary import PeriodSummary, base_fee_of, meter_line
from usage.period_usage import ceil_hour, floor_hour, meter_usage_in_period
from usage.projections import HISTORY_DAYS, day_start, project_usage

DAY = timedelta(days=1)


def _any(conditions: list[Q]) -> Q | None:
    return reduce(or_, conditions) if conditions else None


def _pair_value(row_n, row_s, aggregation: str) -> int:
    return int((row_n if aggregation == Meter.Aggregation.COUNT else row_s) or 0)


def _daily_totals(states, meters, now):
    """(account, meter) -> {day: total} from the rollups, for sum and count meters, from
    ``HISTORY_DAYS`` before each period to now; the period's first day counts only the
    hours from the period's start (the rest belongs to the period before)."""
    ids = list(states)
    meter_ids = [m.pk for m in meters.values() if m.aggregation != Meter.Aggregation.LAST]
    totals: dict[tuple[int, int], dict[date, int]] = defaultdict(dict)
    if not ids or not meter_ids:
        return totals
    earliest = min(day_start(s.period_start) for s in states.values()) - HISTORY_DAYS * DAY
    rows = (
        UsageRollup.objects.filter(account_id__in=ids, meter_id__in=meter_ids, hour__gte=earliest)
        .order_by()
        .annotate(day=TruncDay("hour"))
        .values_list("account_id", "meter_id", "day")
        .annotate(n=Sum("event_count"), s=Sum("sum_value"))
    )
    for account_id, meter_id, day, n, s in rows:
        value = _pair_value(n, s, meters[meter_id].aggregation)
        totals[(account_id, meter_id)][day.date()] = value
    # Hours of the first day before the period's start hour (from the rollups), and the
    # events of the start hour before the start itself (from the ledger).
    before_hour = _any(
        [
            Q(
                account_id=a,
                hour__gte=day_start(s.period_start),
                hour__lt=floor_hour(s.period_start),
            )
            for a, s in states.items()
            if floor_hour(s.period_start) > day_start(s.period_start)
        ]
    )
    if before_hour is not None:
        for account_id, meter_id, n, s in (
            UsageRollup.objects.filter(before_hour, meter_id__in=meter_ids)
            .order_by()
            .values_list("account_id", "meter_id")
            .annotate(n=Sum("event_count"), s=Sum("sum_value"))
        ):
            first = states[account_id].period_start.date()
            day_totals = totals[(account_id, meter_id)]
            day_totals[first] = day_totals.get(first, 0) - _pair_value(
                n, s, meters[meter_id].aggregation
            )
    within_hour = _any(
        [
            Q(account_id=a, timestamp__gte=floor_hour(s.period_start), timestamp__lt=s.period_start)
            for a, s in states.items()
            if floor_hour(s.period_start) < s.period_start
        ]
    )
    if within_hour is not None:
        for account_id, meter_id, n, s in (
            UsageEvent.objects.filter(within_hour, meter_id__in=meter_ids)
            .order_by()
            .values_list("account_id", "meter_id")
            .annotate(n=Count("id"), s=Sum("value"))
        ):
            first = states[account_id].period_start.date()
            day_totals = totals[(account_id, meter_id)]
            day_totals[first] = day_totals.get(first, 0) - _pair_value(
                n, s, meters[meter_id].aggregation
            )
    return totals


def _last_values(states, meters) -> dict[tuple[int, int], tuple[datetime, int]]:
    """(account, meter) -> (time, value) of the newest rollup this period, ``last`` meters."""
    meter_ids = [m.pk for m in meters.values() if m.aggregation == Meter.Aggregation.LAST]
    in_period = _any(
        [Q(account_id=a, hour__gte=floor_hour(s.period_start)) for a, s in states.items()]
    )
    if not meter_ids or in_period is None:
        return {}
    newest = list(
        UsageRollup.objects.filter(in_period, meter_id__in=meter_ids)
        .order_by()
        .values_list("account_id", "meter_id")
        .annotate(t=Max("last_timestamp"))
    )
    rows = _any([Q(account_id=a, meter_id=m, last_timestamp=t) for a, m, t in newest])
    if rows is None:
        return {}
    return {
        (a, m): (t, v)
        for a, m, t, v in UsageRollup.objects.filter(rows).values_list(
            "account_id", "meter_id", "last_timestamp", "last_value"
        )
    }


def _series(day_totals: dict[date, int], start: datetime, now: datetime):
    """This period's days (zeros included) and the earlier days, zero-filled from the
    first that had usage: the inputs :func:`project_usage` gets on the single path."""
    first_day = day_start(start)
    series, day = [], first_day
    while day < now:
        series.append((day, day_totals.get(day.date(), 0)))
        day += DAY
    earlier = sorted(d for d in day_totals if d < first_day.date())
    history = []
    if earlier:
        day = earlier[0]
        while day < first_day.date():
            history.append((day, day_totals.get(day, 0)))
            day += DAY
    return series, history


def period_summaries_for_accounts(
    *, accounts: list[Account], now: datetime | None = None
) -> dict[int, PeriodSummary]:
    """Current-period summaries of the accounts that have a live, open period."""
    now = now or timezone.now()
    by_id = {a.pk: a for a in accounts}
    states: dict[int, SubscriptionState] = {
        account_id: state
        for account_id, state in subscription_states_for_accounts(account_ids=list(by_id)).items()
        if state.period_end > now
    }
    meters = {i.meter.pk: i.meter for s in states.values() for i in s.metered_items}
    totals = _daily_totals(states, meters, now)
    last_values = _last_values(states, meters)
    summaries = {}
    for account_id, state in states.items():
        account, start, end = by_id[account_id], state.period_start, state.period_end
        lines = []
        for item in state.metered_items:
            meter, key = item.meter, (account_id, item.meter.pk)
            if meter.aggregation == Meter.Aggregation.LAST:
                newest = last_values.get(key)
                if newest is not None and newest[0] < start:
                    # Only a value from before the period in its first hour: ask exactly.
                    usage = meter_usage_in_period(
                        account=account, meter=meter, start=start, end=end, now=now
                    )
                else:
                    usage = newest[1] if newest else 0
                series = [(max(start, ceil_hour(start) - timedelta(hours=1)), usage)]
                history = []
            else:
                series, history = _series(totals.get(key, {}), start, now)
                usage = sum(v for _, v in series)
            projector = partial(
                project_usage,
                series=series if usage or meter.aggregation != "last" else [],
                aggregation=meter.aggregation,
                period_start=start,
                period_end=end,
                now=now,
                history=history,
            )
            lines.append(meter_line(item=item, usage=usage, projector=projector))
        summaries[account_id] = PeriodSummary(
            account=account,
            state=state,
            period_start=start,
            period_end=end,
            closed=False,
            now=now,
            lines=tuple(lines),
            base_fee=base_fee_of(state),
            currency=state.currency,
        )
    return summaries
