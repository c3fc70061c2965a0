"""The catalog file: a declarative TOML description of meters, plans and their prices.

Parsing is pure: it turns the file into frozen specs and the exact Stripe parameters
each price is created with, or raises :class:`CatalogError` naming the bad field.
"""

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

AGGREGATIONS = ("sum", "count", "last")
INTERVALS = ("day", "week", "month", "year")
# A currency as Stripe's API writes it: the ISO 4217 code in lowercase
# (https://docs.stripe.com/currencies: "Three-letter ISO currency code, in lowercase").
CURRENCY_RE = re.compile(r"^[a-z]{3}$")
# What a per-currency price (``[plans.<plan>.prices.currencies.<currency>]``) may set: its
# amounts; tiers_mode and package may be repeated but must equal the base price's.
CURRENCY_PRICE_KEYS = frozenset(
    {"unit_amount", "unit_amount_decimal", "tiers", "tiers_mode", "package"}
)


class CatalogError(ValueError):
    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class MeterSpec:
    event_name: str
    display_name: str
    unit_label: str
    aggregation: str


@dataclass(frozen=True)
class PriceSpecParams:
    lookup_key: str
    nickname: str
    meter: str | None
    params: dict[str, Any]  # Stripe create parameters, without product

    @property
    def currency(self) -> str:
        return self.params["currency"]

    @property
    def spec_hash(self) -> str:
        canonical = json.dumps(self.params, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PlanSpec:
    key: str
    name: str
    description: str
    position: int
    prices: tuple[PriceSpecParams, ...] = field(default_factory=tuple)

    @property
    def currencies(self) -> tuple[str, ...]:
        """Every currency the plan is priced in, the catalog's first."""
        return tuple(dict.fromkeys(p.currency for p in self.prices))

    def prices_in(self, currency: str) -> tuple[PriceSpecParams, ...]:
        return tuple(p for p in self.prices if p.currency == currency)


@dataclass(frozen=True)
class Catalog:
    currency: str
    meters: tuple[MeterSpec, ...]
    plans: tuple[PlanSpec, ...]


def _str(data: dict, key: str, where: str, *, required: bool = True, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise CatalogError(f"{where}.{key}", "is required")
        return default
    if not isinstance(value, str) or (required and not value.strip()):
        raise CatalogError(f"{where}.{key}", "must be a non-empty string")
    return value


def _amount(value: Any, where: str) -> str:
    """An amount in minor units as Stripe's decimal string (``unit_amount_decimal``)."""
    if isinstance(value, (bool, float)):
        raise CatalogError(where, "must be an integer or a decimal string, never a float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise CatalogError(where, f"{value!r} is not a number") from exc
    if amount < 0 or not amount.is_finite():
        raise CatalogError(where, "must be zero or more")
    if amount.as_tuple().exponent < -12:
        raise CatalogError(where, "has more than 12 decimal places")
    return format(amount.normalize(), "f")


def _tiers(raw: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise CatalogError(where, "must be a non-empty list of tiers")
    tiers, previous = [], 0
    for i, tier in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(tier, dict):
            raise CatalogError(here, "must be a table")
        up_to = tier.get("up_to")
        last = i == len(raw) - 1
        if last:
            if up_to != "inf":
                raise CatalogError(f"{here}.up_to", "the last tier must be 'inf'")
        elif isinstance(up_to, bool) or not isinstance(up_to, int) or up_to <= previous:
            raise CatalogError(f"{here}.up_to", "must be an integer above the previous tier's")
        else:
            previous = up_to
        out: dict[str, Any] = {"up_to": up_to}
        unit = tier.get("unit_amount_decimal", tier.get("unit_amount"))
        flat = tier.get("flat_amount_decimal", tier.get("flat_amount"))
        if unit is None and flat is None:
            raise CatalogError(here, "needs unit_amount or flat_amount")
        if unit is not None:
            out["unit_amount_decimal"] = _amount(unit, f"{here}.unit_amount")
        if flat is not None:
            out["flat_amount_decimal"] = _amount(flat, f"{here}.flat_amount")
        tiers.append(out)
    return tiers


def _amounts(raw: dict, where: str) -> dict[str, Any]:
    """The pricing part of a price's Stripe parameters: per-unit (with an optional
    package) or tiered."""
    if "tiers" in raw:
        mode = raw.get("tiers_mode")
        if mode not in ("graduated", "volume"):
            raise CatalogError(f"{where}.tiers_mode", "must be 'graduated' or 'volume'")
        if "package" in raw:
            raise CatalogError(f"{where}.package", "cannot be combined with tiers (Stripe)")
        return {
            "billing_scheme": "tiered",
            "tiers_mode": mode,
            "tiers": _tiers(raw["tiers"], f"{where}.tiers"),
        }
    unit = raw.get("unit_amount_decimal", raw.get("unit_amount"))
    if unit is None:
        raise CatalogError(f"{where}.unit_amount", "is required for a per-unit price")
    out: dict[str, Any] = {
        "billing_scheme": "per_unit",
        "unit_amount_decimal": _amount(unit, where),
    }
    package = raw.get("package")
    if package is not None:
        size = package.get("size") if isinstance(package, dict) else None
        rounding = package.get("round", "up") if isinstance(package, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise CatalogError(f"{where}.package.size", "must be a positive integer")
        if rounding not in ("up", "down"):
            raise CatalogError(f"{where}.package.round", "must be 'up' or 'down'")
        out["transform_quantity"] = {"divide_by": size, "round": rounding}
    return out


def _currency_amounts(raw: Any, where: str, *, base_raw: dict, base: dict) -> dict[str, Any]:
    """The amounts of one extra currency of a price: the same shape as the base price
    (same billing scheme and tiers mode, the same number of tiers with the same ``up_to``
    boundaries, the same package), only the amounts differ."""
    if not isinstance(raw, dict):
        raise CatalogError(where, "must be a table")
    for key in raw:
        if key not in CURRENCY_PRICE_KEYS:
            raise CatalogError(
                f"{where}.{key}",
                "is taken from the base price; a currency only sets its amounts "
                "(unit_amount, unit_amount_decimal or tiers)",
            )
    if "tiers" in base and "tiers" not in raw:
        raise CatalogError(f"{where}.tiers", "the base price is tiered: give this currency's tiers")
    for key in ("unit_amount", "unit_amount_decimal"):
        if "tiers" in base and key in raw:
            raise CatalogError(f"{where}.{key}", "the base price is tiered: amounts go in tiers")
    if "tiers" not in base and "tiers" in raw:
        raise CatalogError(f"{where}.tiers", "the base price is per-unit, not tiered")
    if "tiers_mode" in raw and raw["tiers_mode"] != base.get("tiers_mode"):
        raise CatalogError(f"{where}.tiers_mode", "must be the base price's tiers_mode")
    if "package" in raw and raw["package"] != base_raw.get("package"):
        raise CatalogError(f"{where}.package", "must be the base price's package")
    inherited = {k: base_raw[k] for k in ("tiers_mode", "package") if k in base_raw}
    out = _amounts({**inherited, **raw}, where)
    if "tiers" in out:
        base_bounds = [t["up_to"] for t in base["tiers"]]
        bounds = [t["up_to"] for t in out["tiers"]]
        if len(bounds) != len(base_bounds):
            raise CatalogError(
                f"{where}.tiers",
                f"has {len(bounds)} tiers; the base price has {len(base_bounds)}",
            )
        for i, (up_to, base_up_to) in enumerate(zip(bounds, base_bounds, strict=True)):
            if up_to != base_up_to:
                raise CatalogError(
                    f"{where}.tiers[{i}].up_to",
                    f"is {up_to!r}; the base price's tier {i} ends at {base_up_to!r}",
                )
    # Three-decimal currencies (bhd, jod, kwd, omr, tnd): Stripe says "these API calls
    # [Payment Intents, Refunds, Disputes] require the least-significant (last) digit to
    # be 0. Your integration must round amounts to the nearest ten. For example, 5.124 KWD
    # must be rounded to 5120 or 5130." (https://docs.stripe.com/currencies#three-decimal)
    # That rule is about the amount charged, not about a price's unit or tier amounts, and
    # how Billing rounds a three-decimal invoice is not documented (notes: NOT FOUND), so
    # the catalog does not invent a rule for prices: amounts are whole or decimal fils.
    return out


def _price(raw: Any, where: str, *, currency: str, interval: str, meters: set[str]):
    """The base price and one more price per extra currency: ``[prices.currencies.<c>]``
    becomes its own Stripe price with lookup key ``<lookup_key>_<c>`` (the base currency
    keeps ``<lookup_key>``). Stripe's ``currency_options`` would put every currency on one
    price, but a subscription then has to pass ``currency`` everywhere and the mirror
    would hold one row for several amounts; one price per currency keeps each PlanPrice
    row in one currency."""
    if not isinstance(raw, dict):
        raise CatalogError(where, "must be a table")
    lookup_key = _str(raw, "lookup_key", where)
    meter = raw.get("meter")
    if meter is not None and meter not in meters:
        raise CatalogError(f"{where}.meter", f"no meter named {meter!r} in [meters]")
    recurring: dict[str, Any] = {
        "interval": interval,
        "interval_count": 1,
        "usage_type": "metered" if meter else "licensed",
    }
    nickname = _str(raw, "nickname", where, required=False, default=lookup_key)
    base = _amounts(raw, where)

    def spec(key: str, code: str, amounts: dict[str, Any]) -> PriceSpecParams:
        params: dict[str, Any] = {
            "currency": code,
            "lookup_key": key,
            "nickname": nickname,
            "recurring": dict(recurring),
            **amounts,
        }
        return PriceSpecParams(lookup_key=key, nickname=nickname, meter=meter, params=params)

    out = [spec(lookup_key, currency, base)]
    extra = raw.get("currencies", {})
    if not isinstance(extra, dict):
        raise CatalogError(f"{where}.currencies", "must be a table of currencies")
    for code, raw_amounts in extra.items():
        here = f"{where}.currencies.{code}"
        if not CURRENCY_RE.match(code):
            raise CatalogError(here, "a currency is 3 lowercase letters (ISO 4217, as Stripe)")
        if code == currency:
            raise CatalogError(here, f"is the catalog's currency already ({currency})")
        amounts = _currency_amounts(raw_amounts, here, base_raw=raw, base=base)
        out.append(spec(f"{lookup_key}_{code}", code, amounts))
    return out


def _check_same_currencies(prices: list[PriceSpecParams], *, where: str, currency: str) -> None:
    """A plan is sold in a currency only when every one of its prices has it: an account
    billed in jpy subscribes to all of the plan's jpy prices, and a missing one (a base
    fee, say) would silently make the plan cheaper."""
    by_base: dict[str, set[str]] = {}
    order: list[str] = []
    for price in prices:
        if price.currency == currency:
            by_base[price.lookup_key] = set()
            order.append(price.lookup_key)
        else:
            base_key = price.lookup_key.removesuffix(f"_{price.currency}")
            by_base[base_key].add(price.currency)
    everywhere = set().union(*by_base.values())
    for i, key in enumerate(order):
        missing = sorted(everywhere - by_base[key])
        if missing:
            raise CatalogError(
                f"{where}.prices[{i}].currencies",
                f"has no {', '.join(missing)} amounts; every price of a plan needs the same "
                "currencies (another price of this plan has them)",
            )


def parse_catalog(text: str) -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError("file", f"is not valid TOML: {exc}") from exc
    currency = _str(data, "currency", "catalog").lower()
    if not CURRENCY_RE.match(currency):
        raise CatalogError("catalog.currency", "must be a 3-letter ISO currency code")

    meters = []
    for name, raw in (data.get("meters") or {}).items():
        where = f"meters.{name}"
        if len(name) > 100:
            raise CatalogError(where, "event names are at most 100 characters (Stripe)")
        aggregation = _str(raw, "aggregation", where)
        if aggregation not in AGGREGATIONS:
            raise CatalogError(f"{where}.aggregation", f"must be one of {', '.join(AGGREGATIONS)}")
        meters.append(
            MeterSpec(
                event_name=name,
                display_name=_str(raw, "display_name", where),
                unit_label=_str(raw, "unit_label", where, required=False, default="unit"),
                aggregation=aggregation,
            )
        )
    meter_names = {m.event_name for m in meters}

    plans, seen_keys = [], set()
    for position, (key, raw) in enumerate((data.get("plans") or {}).items()):
        where = f"plans.{key}"
        interval = raw.get("interval", "month")
        if interval not in INTERVALS:
            raise CatalogError(f"{where}.interval", f"must be one of {', '.join(INTERVALS)}")
        raw_prices = raw.get("prices")
        if not isinstance(raw_prices, list) or not raw_prices:
            raise CatalogError(f"{where}.prices", "a plan needs at least one [[price]]")
        prices = []
        for i, raw_price in enumerate(raw_prices):
            for price in _price(
                raw_price,
                f"{where}.prices[{i}]",
                currency=currency,
                interval=interval,
                meters=meter_names,
            ):
                if price.lookup_key in seen_keys:
                    raise CatalogError(
                        f"{where}.prices[{i}].lookup_key", f"{price.lookup_key!r} is used twice"
                    )
                seen_keys.add(price.lookup_key)
                prices.append(price)
        _check_same_currencies(prices, where=where, currency=currency)
        plans.append(
            PlanSpec(
                key=key,
                name=_str(raw, "name", where),
                description=_str(raw, "description", where, required=False),
                position=position,
                prices=tuple(prices),
            )
        )
    if not plans:
        raise CatalogError("catalog.plans", "the catalog defines no plans")
    return Catalog(currency=currency, meters=tuple(meters), plans=tuple(plans))


def load_catalog(path: Path) -> Catalog:
    return parse_catalog(Path(path).read_text(encoding="utf-8"))
