"""An account's period at a glance, per metered price: usage so far (exact), the
allowance and the share used, the cost so far, the projection to period end and its
cost; the base fee and the estimated invoice. Built by
:func:`usage.selectors.summaries.period_summaries_for_accounts`."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from billing.mirror.subscriptions import ItemState, SubscriptionState
from billing.models import Account
from billing.pricing import bill_amount
from usage.projection_cost import project_cost
from usage.projections import Projection


@dataclass(frozen=True)
class MeterLine:
    """One metered price's numbers. The projection is computed when first read (the
    dashboard always reads it; an alert sweep only for projected rules)."""

    item: ItemState
    usage: int
    allowance: int
    share_used: Decimal | None  # percent of the allowance, one decimal
    cost_so_far: int
    projector: Callable[[], Projection] = field(repr=False, compare=False)

    @cached_property
    def projection(self) -> Projection:
        projection = self.projector()
        if projection.usage_so_far != self.usage:
            # The projection's series is whole hours of rollups; the exact total (edges
            # from the ledger) wins, and the projection moves with it.
            projection = _rebase(projection, self.usage, self.item.meter.aggregation)
        return projection

    @cached_property
    def projected_cost(self) -> tuple[int, int, int]:
        """Low, expected, high, in minor units."""
        return project_cost(price_spec=self.item.spec, projection=self.projection)

    @property
    def meter(self):
        return self.item.meter

    @property
    def bar_percent(self) -> int:
        """Width of the allowance bar, capped at 100."""
        if self.share_used is None:
            return 0
        return min(100, int(self.share_used))

    @property
    def over_allowance(self) -> bool:
        return bool(self.allowance) and self.usage > self.allowance


@dataclass(frozen=True)
class PeriodSummary:
    account: Account
    state: SubscriptionState
    period_start: datetime
    period_end: datetime
    closed: bool
    now: datetime
    lines: tuple[MeterLine, ...]
    base_fee: int
    currency: str
    # Where the lines' projections are read from (``ProjectionInputs``), shared by the
    # summaries of one chunk: ``usage.selectors.summaries.summaries_read_projections``.
    projections: object = field(default=None, repr=False, compare=False)

    @property
    def days_left(self) -> int:
        if self.closed:
            return 0
        return max(0, (self.period_end - self.now + timedelta(days=1) - timedelta(seconds=1)).days)

    @property
    def usage_cost_so_far(self) -> int:
        return sum(line.cost_so_far for line in self.lines)

    @property
    def projected_usage_cost(self) -> tuple[int, int, int]:
        return tuple(sum(line.projected_cost[i] for line in self.lines) for i in range(3))

    @property
    def estimated_invoice(self) -> tuple[int, int, int]:
        """The invoice at period end: this period's usage (in arrears) plus the next
        period's base fee (in advance), low / expected / high."""
        return tuple(self.base_fee + cost for cost in self.projected_usage_cost)


def _rebase(projection: Projection, usage: int, aggregation: str) -> Projection:
    if aggregation == "last":
        return replace(
            projection,
            usage_so_far=usage,
            projected=usage,
            low=usage,  # never below the current value
            high=max(projection.high, usage),
        )
    delta = usage - projection.usage_so_far
    return replace(
        projection,
        usage_so_far=usage,
        projected=projection.projected + delta,
        low=max(usage, projection.low + delta),
        high=max(usage, projection.high + delta),
    )


def meter_line(*, item, usage: int, projector: Callable[[], Projection]) -> MeterLine:
    """A summary line: usage (exact) priced by the engine; the projection on demand."""
    return MeterLine(
        item=item,
        usage=usage,
        allowance=item.included_units,
        share_used=_share(usage, item.included_units),
        cost_so_far=_line_amount(item.spec, usage),
        projector=projector,
    )


def base_fee_of(state: SubscriptionState) -> int:
    """The licensed items' fee for one period, in minor units."""
    return sum(_line_amount(item.spec, item.quantity) for item in state.licensed_items)


def _line_amount(spec, quantity: int) -> int:
    """``line_amount(price=spec, quantity=quantity)``, through the pricing engine's
    compiled form (``bill_amount`` of the one line: the same integer, checked against
    ``line_amount`` in tests/billing/pricing/test_budget.py, in a few microseconds instead
    of tens: a sweep prices three lines of every account)."""
    return bill_amount(items=[(spec, quantity)])


def _share(usage: int, allowance: int) -> Decimal | None:
    if not allowance:
        return None
    return (Decimal(usage) * 100 / Decimal(allowance)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )
