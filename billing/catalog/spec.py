"""The catalog file: a declarative TOML description of meters, plans and their prices.

Parsing is pure: it turns the file into frozen specs and the exact Stripe parameters
each price is created with, or raises :class:`CatalogError` naming the bad field.
"""

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

AGGREGATIONS = ("sum", "count", "last")
INTERVALS = ("day", "week", "month", "year")


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


def _price(raw: Any, where: str, *, currency: str, interval: str, meters: set[str]):
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
    params: dict[str, Any] = {
        "currency": currency,
        "lookup_key": lookup_key,
        "nickname": _str(raw, "nickname", where, required=False, default=lookup_key),
        "recurring": recurring,
    }
    if "tiers" in raw:
        mode = raw.get("tiers_mode")
        if mode not in ("graduated", "volume"):
            raise CatalogError(f"{where}.tiers_mode", "must be 'graduated' or 'volume'")
        if "package" in raw:
            raise CatalogError(f"{where}.package", "cannot be combined with tiers (Stripe)")
        params.update(
            billing_scheme="tiered", tiers_mode=mode, tiers=_tiers(raw["tiers"], f"{where}.tiers")
        )
    else:
        unit = raw.get("unit_amount_decimal", raw.get("unit_amount"))
        if unit is None:
            raise CatalogError(f"{where}.unit_amount", "is required for a per-unit price")
        params.update(billing_scheme="per_unit", unit_amount_decimal=_amount(unit, where))
        package = raw.get("package")
        if package is not None:
            size = package.get("size") if isinstance(package, dict) else None
            rounding = package.get("round", "up") if isinstance(package, dict) else None
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise CatalogError(f"{where}.package.size", "must be a positive integer")
            if rounding not in ("up", "down"):
                raise CatalogError(f"{where}.package.round", "must be 'up' or 'down'")
            params["transform_quantity"] = {"divide_by": size, "round": rounding}
    return PriceSpecParams(
        lookup_key=lookup_key, nickname=params["nickname"], meter=meter, params=params
    )


def parse_catalog(text: str) -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError("file", f"is not valid TOML: {exc}") from exc
    currency = _str(data, "currency", "catalog").lower()
    if len(currency) != 3:
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
            price = _price(
                raw_price,
                f"{where}.prices[{i}]",
                currency=currency,
                interval=interval,
                meters=meter_names,
            )
            if price.lookup_key in seen_keys:
                raise CatalogError(f"{where}.prices[{i}].lookup_key", "is used twice")
            seen_keys.add(price.lookup_key)
            prices.append(price)
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
