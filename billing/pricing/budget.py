"""Budgets and hard caps: the bill so far, and how many more units fit under a limit.

:func:`bill_amount` is the running period's bill: the sum of the subscription's line
amounts, each rounded once, half up, as :func:`~billing.pricing.rating.line_amount`
rounds it. :func:`units_until` inverts one line exactly, in O(tiers) integer
operations and no scan over units, for the entitlement check on the ingestion hot path.

Both run on the hot path, where the general rating (``Decimal`` contexts, a
``TierCharge`` per tier) costs tens of microseconds a line, so a price is first
*compiled* to integers: every amount of the price (``Decimal``, in minor units, up to
12 decimals) times one common denominator ``scale`` (a power-of-ten divisor, from
``Decimal.as_integer_ratio``), which makes the exact amount ``A(q)`` an integer
``A(q) x scale``. Nothing is rounded but the line, as ``line_amount`` does it;
``tests/billing/pricing/test_budget.py`` checks both functions against ``line_amount``.

The exact amount is piecewise linear in ``q`` (in packages for ``transform_quantity``),
on segments ``[start, end]`` where ``A(q) = base + q x unit``:

- per_unit: one segment ``[0, inf)``, base 0; with ``transform_quantity`` the same in
  packages, ``ceil`` or ``floor`` of ``q / divide_by``;
- graduated: tier *i* covers ``(up_to[i-1], up_to[i]]`` (tier 0 also covers 0), and
  its base carries the lower tiers' full amounts plus its own flat amount, which
  Stripe charges once the quantity enters the tier (so ``A`` jumps there, and rises);
- volume: tier *i* covers the same units, base = its flat amount, every unit at its
  unit amount: ``A`` can drop when the quantity enters a cheaper tier.

The inversion. The other lines stay at ``others`` (an integer), so the bill with ``q``
units on the growing line exceeds ``limit`` exactly when its rounded line exceeds
``room = limit - others``. Lines round half up and are never negative, so that is
exactly when ``A(q) >= room + 1/2`` (the *threshold*). The answer is the first
``q > q0`` reaching the threshold, minus ``q0 + 1``: segments are tried in order from
``q0 + 1``, and within one ``A`` never decreases, so the first ``q`` reaching the
threshold there is one ceiling division. For volume prices that is the *first*
crossing even when a cheaper tier later brings the bill back under the limit.
"""

from collections.abc import Sequence
from decimal import Decimal
from math import lcm

from billing.pricing.types import PriceSpec

PricedQuantity = tuple[PriceSpec, int]

# (start, end or None for unbounded, base, unit), integers x scale:
# A(q) x scale = base + q x unit for start <= q <= end
Segment = tuple[int, int | None, int, int]


class _Compiled:
    """A price as integers x ``scale``: its segments, or one unit amount and a transform."""

    __slots__ = ("divide_by", "round_up", "scale", "segments", "unit")

    def __init__(
        self,
        *,
        scale: int,
        segments: tuple[Segment, ...] = (),
        unit: int = 0,
        divide_by: int | None = None,
        round_up: bool = False,
    ) -> None:
        self.scale = scale
        self.segments = segments
        self.unit = unit
        self.divide_by = divide_by
        self.round_up = round_up

    def packages(self, quantity: int) -> int:
        """per_unit: the quantity after transform_quantity (as ``billable_quantity``)."""
        if self.divide_by is None:
            return quantity
        if self.round_up:
            return -(-quantity // self.divide_by)
        return quantity // self.divide_by

    def scaled_amount(self, quantity: int) -> int:
        """The exact amount of ``quantity`` in minor units, times ``scale``."""
        if not self.segments:
            return self.packages(quantity) * self.unit
        for _start, end, base, unit in self.segments:
            if end is None or quantity <= end:
                return base + quantity * unit
        raise AssertionError("the last tier is unbounded")  # PriceSpec guarantees it

    def line(self, quantity: int) -> int:
        """The line amount in minor units: the exact amount rounded once, half up."""
        return (2 * self.scaled_amount(quantity) + self.scale) // (2 * self.scale)


def _ratio(amount: Decimal | None) -> tuple[int, int]:
    if amount is None:
        return 0, 1
    return amount.as_integer_ratio()


# Compiled prices by identity (PriceSpec is frozen, so a compiled form never goes
# stale; the entry keeps its price alive, so its id cannot be reused). Bounded: cleared
# when full. Dict reads and writes are atomic, so threads at worst compile twice.
_COMPILED: dict[int, tuple[PriceSpec, _Compiled]] = {}
_COMPILED_MAX = 1024


def _compiled(price: PriceSpec) -> _Compiled:
    entry = _COMPILED.get(id(price))
    if entry is not None and entry[0] is price:
        return entry[1]
    compiled = _compile(price)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[id(price)] = (price, compiled)
    return compiled


def _compile(price: PriceSpec) -> _Compiled:
    if price.billing_scheme == "per_unit":
        numerator, denominator = _ratio(price.unit_amount_decimal)
        return _Compiled(
            scale=denominator,
            unit=numerator,
            divide_by=price.transform_divide_by,
            round_up=price.transform_round == "up",
        )
    ratios = [
        (_ratio(tier.unit_amount_decimal), _ratio(tier.flat_amount_decimal)) for tier in price.tiers
    ]
    scale = lcm(*(d for pair in ratios for _, d in pair))
    graduated = price.tiers_mode == "graduated"
    segments: list[Segment] = []
    below = 0  # up_to of the previous tier
    reached = 0  # graduated: A(below) x scale
    for index, (tier, ((unit_n, unit_d), (flat_n, flat_d))) in enumerate(
        zip(price.tiers, ratios, strict=True)
    ):
        unit = unit_n * (scale // unit_d)
        flat = flat_n * (scale // flat_d)
        # graduated: A(q) = A(below) + flat + (q - below) x unit on (below, up_to]
        base = reached + flat - below * unit if graduated else flat
        segments.append((0 if index == 0 else below + 1, tier.up_to, base, unit))
        if tier.up_to is not None:
            reached = base + tier.up_to * unit
            below = tier.up_to
    return _Compiled(scale=scale, segments=tuple(segments))


def _check_int(name: str, value: int, *, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")


def _compiled_items(items: Sequence[PricedQuantity]) -> list[tuple[_Compiled, int]]:
    currencies = {price.currency for price, _ in items}
    if len(currencies) > 1:
        raise ValueError(f"all prices must share one currency, got {sorted(currencies)}")
    compiled = []
    for price, quantity in items:
        _check_int("quantity", quantity, minimum=0)
        compiled.append((_compiled(price), quantity))
    return compiled


def bill_amount(*, items: Sequence[PricedQuantity]) -> int:
    """The bill for the period so far: the sum of line_amount(price, quantity) over the
    subscription's prices (licensed/flat prices with their quantity, metered prices with
    the usage so far), minor units. One currency (raise ValueError on mixed).

    Each line is rounded once, half up, before the lines are added, as on Stripe's
    invoice: ``(licensed 9,900, 1), (per_unit 0.35, 1,001)`` -> 9,900 + round(350.35)
    = 10,250. No items -> 0.
    """
    return sum(price.line(quantity) for price, quantity in _compiled_items(items))


def _first_reaching(price: _Compiled, *, threshold: int, start: int) -> int | None:
    """The first q >= start with A(q) x scale >= threshold (> 0), or None."""
    if not price.segments:
        if price.unit == 0:
            return None
        packages = -(-threshold // price.unit)  # fewest packages (or units) reaching it
        divide_by = price.divide_by
        if divide_by is None:
            least = packages
        elif price.round_up:
            least = (packages - 1) * divide_by + 1  # ceil(q / d) >= n <=> q > (n - 1) x d
        else:
            least = packages * divide_by  # floor(q / d) >= n <=> q >= n x d
        return max(least, start)  # A never decreases
    for seg_start, seg_end, base, unit in price.segments:
        first = max(seg_start, start)
        if seg_end is not None and first > seg_end:
            continue
        if base + first * unit >= threshold:
            return first
        if unit == 0:
            continue
        needed = -((base - threshold) // unit)  # ceil((threshold - base) / unit) > first
        if seg_end is None or needed <= seg_end:
            return needed
    return None


def units_until(*, items: Sequence[PricedQuantity], index: int, limit: int) -> int | None:
    """How many more units of items[index] (its quantity grows, every other item stays)
    fit before the bill exceeds ``limit`` (minor units): the largest r >= 0 such that for
    every 0 <= u <= r, bill with items[index] quantity + u is <= limit. 0 when the bill is
    already at or over the limit without any more unit ... (precisely: if bill(now) > limit
    return 0). None when the bill never exceeds the limit however many units are added
    (e.g. a price whose last tier is free, or a zero unit price).

    Exact: the line is inverted per tier in integers, with the line's half-up rounding
    (see the module docstring). For a volume price the bill can drop when the usage
    enters a cheaper tier; the answer stops at the *first* unit that exceeds the limit,
    even if the bill would come back under it later.
    """
    _check_int("index", index)
    _check_int("limit", limit)
    compiled = _compiled_items(items)
    if not 0 <= index < len(compiled):
        raise IndexError(f"index {index} is outside items (0..{len(compiled) - 1})")
    price, quantity = compiled[index]
    others = sum(p.line(q) for i, (p, q) in enumerate(compiled) if i != index)
    if others + price.line(quantity) > limit:
        return 0
    room = limit - others  # >= the line now >= 0
    # round_half_up(A) > room  <=>  A >= room + 1/2  <=>  A x scale >= ceil((2 room + 1) scale / 2)
    threshold = -(-(2 * room + 1) * price.scale // 2)
    first = _first_reaching(price, threshold=threshold, start=quantity + 1)
    if first is None:
        return None
    return first - quantity - 1
