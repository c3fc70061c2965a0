"""Value types of the pricing engine: prices, tiers and rated line items.

All amounts on a :class:`PriceSpec` are ``Decimal`` values in the currency's
minor unit, exactly like Stripe's ``unit_amount_decimal`` / ``flat_amount_decimal``
(``Decimal("0.2")`` is a fifth of a cent for usd). Amounts on a :class:`LineItem`
are integers in minor units, rounded once by :func:`billing.money.to_minor_units`.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Literal

BillingScheme = Literal["per_unit", "tiered"]
TiersMode = Literal["graduated", "volume"]
TransformRound = Literal["up", "down"]
UsageType = Literal["licensed", "metered"]
Interval = Literal["day", "week", "month", "year"]

_BILLING_SCHEMES = ("per_unit", "tiered")
_TIERS_MODES = ("graduated", "volume")
_TRANSFORM_ROUNDS = ("up", "down")
_USAGE_TYPES = ("licensed", "metered")
_INTERVALS = ("day", "week", "month", "year")


def _check_amount(name: str, value: Decimal | None) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal or None, not {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative Decimal, not {value}")


def _check_count(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")


@dataclass(frozen=True, slots=True)
class Tier:
    """One row of a tier table.

    ``up_to`` is the inclusive upper bound of the tier in units, ``None`` for
    infinity (Stripe's ``"inf"``; only the last tier). A missing unit or flat amount
    counts as zero.
    """

    up_to: int | None
    unit_amount_decimal: Decimal | None = None
    flat_amount_decimal: Decimal | None = None

    def __post_init__(self) -> None:
        if self.up_to is not None:
            _check_count("Tier.up_to", self.up_to, minimum=1)
        _check_amount("Tier.unit_amount_decimal", self.unit_amount_decimal)
        _check_amount("Tier.flat_amount_decimal", self.flat_amount_decimal)

    @property
    def unit_amount(self) -> Decimal:
        """The per-unit amount, zero when the tier has none."""
        return self.unit_amount_decimal if self.unit_amount_decimal is not None else Decimal(0)

    @property
    def flat_amount(self) -> Decimal:
        """The flat amount, zero when the tier has none."""
        return self.flat_amount_decimal if self.flat_amount_decimal is not None else Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceSpec:
    """Everything the engine needs to know about a Stripe price.

    Invariants (checked on construction, as Stripe checks them on create):

    - ``per_unit`` prices have a ``unit_amount_decimal`` and no tiers;
    - ``tiered`` prices have a ``tiers_mode`` and at least one tier, ``up_to``
      strictly increasing, the last tier (and only it) unbounded;
    - ``transform_divide_by`` and ``transform_round`` come together, and only on
      ``per_unit`` prices (Stripe does not combine transform_quantity with tiers).

    ``included_units`` is informational (units covered at no charge, derived from a
    leading free tier of a graduated price, see :mod:`billing.pricing.allowance`);
    the rating never uses it, the tiers already say everything.
    """

    id: str
    currency: str
    billing_scheme: BillingScheme = "per_unit"
    unit_amount_decimal: Decimal | None = None
    tiers_mode: TiersMode | None = None
    tiers: tuple[Tier, ...] = ()
    transform_divide_by: int | None = None
    transform_round: TransformRound | None = None
    usage_type: UsageType = "licensed"
    interval: Interval | None = "month"
    interval_count: int = 1
    included_units: int = 0
    nickname: str | None = None
    lookup_key: str | None = None
    meter: str | None = None

    def __post_init__(self) -> None:
        if len(self.currency) != 3 or self.currency != self.currency.lower():
            raise ValueError(f"currency must be a lowercase ISO code, not {self.currency!r}")
        if self.billing_scheme not in _BILLING_SCHEMES:
            raise ValueError(f"unknown billing_scheme: {self.billing_scheme!r}")
        if self.usage_type not in _USAGE_TYPES:
            raise ValueError(f"unknown usage_type: {self.usage_type!r}")
        if self.interval is not None and self.interval not in _INTERVALS:
            raise ValueError(f"unknown interval: {self.interval!r}")
        _check_count("interval_count", self.interval_count, minimum=1)
        _check_count("included_units", self.included_units, minimum=0)
        _check_amount("unit_amount_decimal", self.unit_amount_decimal)
        if not isinstance(self.tiers, tuple):
            raise TypeError("tiers must be a tuple of Tier")
        self._check_transform()
        if self.billing_scheme == "per_unit":
            self._check_per_unit()
        else:
            self._check_tiered()

    def _check_transform(self) -> None:
        if (self.transform_divide_by is None) != (self.transform_round is None):
            raise ValueError("transform_divide_by and transform_round go together")
        if self.transform_divide_by is None:
            return
        _check_count("transform_divide_by", self.transform_divide_by, minimum=1)
        if self.transform_round not in _TRANSFORM_ROUNDS:
            raise ValueError(f"unknown transform_round: {self.transform_round!r}")
        if self.billing_scheme != "per_unit":
            raise ValueError("transform_quantity cannot be combined with tiers")

    def _check_per_unit(self) -> None:
        if self.unit_amount_decimal is None:
            raise ValueError(f"per_unit price {self.id} needs a unit_amount_decimal")
        if self.tiers or self.tiers_mode is not None:
            raise ValueError(f"per_unit price {self.id} cannot have tiers")

    def _check_tiered(self) -> None:
        if self.tiers_mode not in _TIERS_MODES:
            raise ValueError(f"tiered price {self.id} needs tiers_mode graduated|volume")
        if not self.tiers:
            raise ValueError(f"tiered price {self.id} needs at least one tier")
        if self.unit_amount_decimal is not None:
            raise ValueError(f"tiered price {self.id} cannot have a unit_amount_decimal")
        for tier in self.tiers:
            if not isinstance(tier, Tier):
                raise TypeError("tiers must be a tuple of Tier")
        bounds = [tier.up_to for tier in self.tiers]
        if bounds[-1] is not None:
            raise ValueError(f"the last tier of {self.id} must be unbounded (up_to=None)")
        finite = bounds[:-1]
        if any(bound is None for bound in finite):
            raise ValueError(f"only the last tier of {self.id} may be unbounded")
        if any(a >= b for a, b in pairwise(finite)):
            raise ValueError(f"tier up_to values of {self.id} must strictly increase")

    @property
    def name(self) -> str:
        """A human label: nickname, else lookup key, else id."""
        return self.nickname or self.lookup_key or self.id


@dataclass(frozen=True, slots=True, kw_only=True)
class TierCharge:
    """How much of a quantity fell into one tier and what it cost (exact).

    ``tier_index`` is 0-based; ``amount`` = ``quantity`` x unit amount + flat
    amount, in minor units, unrounded.
    """

    tier_index: int
    up_to: int | None
    quantity: int
    unit_amount_decimal: Decimal
    flat_amount_decimal: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Rating:
    """The exact result of rating one quantity under one price.

    ``billed_quantity`` is the quantity after ``transform_quantity`` (equal to
    ``quantity`` for other prices); ``amount`` is exact, in minor units.
    """

    quantity: int
    billed_quantity: int
    amount: Decimal
    tier_breakdown: tuple[TierCharge, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItem:
    """One rated line of an invoice or estimate.

    ``quantity`` is the quantity as given (before ``transform_quantity``), as on a
    Stripe invoice line; ``amount`` is in integer minor units, rounded once from the
    exact ``amount_decimal``. ``kind`` says whether the line is a licensed fee (in
    advance) or metered usage (in arrears).
    """

    price_id: str
    description: str
    quantity: int
    amount: int
    currency: str
    period_start: datetime
    period_end: datetime
    proration: bool = False
    kind: UsageType
    tier_breakdown: tuple[TierCharge, ...] = ()
    amount_decimal: Decimal
