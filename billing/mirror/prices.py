"""Reads: mirrored Stripe prices as the pricing engine sees them, and price -> meter.

A price's meter is the one its Meterdesk ``PlanPrice`` names, else the meter whose
Stripe id the price's ``recurring.meter`` carries: resolved here only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from djstripe.models import Price

from billing.models import Meter, Plan, PlanPrice
from billing.pricing import PriceSpec, price_spec_from_stripe


@dataclass(frozen=True)
class PriceUse:
    """What a price is for: metered or licensed, its meter, its display name."""

    price_id: str
    usage_type: str  # "metered" | "licensed"
    meter: Meter | None
    nickname: str

    @property
    def is_metered(self) -> bool:
        return self.usage_type == "metered"


def mirrored_prices_data(*, price_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """``{price id: Stripe JSON}`` of the mirrored prices among ``price_ids``."""
    ids = {price_id for price_id in price_ids if price_id}
    if not ids:
        return {}
    return {p.id: p.stripe_data or {} for p in Price.objects.filter(id__in=ids)}


def price_uses(
    *, price_ids: Iterable[str], data: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, PriceUse]:
    """Every price id's use, in three queries whatever their number. ``data`` is the
    prices' JSON when already at hand (else read from the mirror)."""
    ids = {price_id for price_id in price_ids if price_id}
    data = mirrored_prices_data(price_ids=ids) if data is None else data
    plan_prices = {
        pp.stripe_price_id: pp
        for pp in PlanPrice.objects.filter(stripe_price_id__in=ids).select_related("meter")
    }
    recurring = {pid: (data.get(pid) or {}).get("recurring") or {} for pid in ids}
    meter_ids = {r.get("meter") for r in recurring.values()} - {None, ""}
    meters = {m.stripe_id: m for m in Meter.objects.filter(stripe_id__in=meter_ids)}
    uses = {}
    for price_id in ids:
        plan_price = plan_prices.get(price_id)
        meter = (plan_price.meter if plan_price else None) or meters.get(
            recurring[price_id].get("meter") or ""
        )
        uses[price_id] = PriceUse(
            price_id=price_id,
            usage_type=recurring[price_id].get("usage_type")
            or ("metered" if meter else "licensed"),
            meter=meter,
            nickname=(plan_price.nickname if plan_price else "")
            or (data.get(price_id) or {}).get("nickname")
            or price_id,
        )
    return uses


def price_meters(*, price_ids: Iterable[str]) -> dict[str, Meter | None]:
    """``{price id: its meter or None}``."""
    return {pid: use.meter for pid, use in price_uses(price_ids=price_ids).items()}


def mirrored_price_spec(*, price_id: str) -> PriceSpec | None:
    """The pricing engine's view of a price from the dj-stripe mirror, or None.

    None when the price is not mirrored, or mirrored without its tiers (dj-stripe
    only has them when the price was fetched with ``expand=["tiers"]``).
    """
    data = mirrored_prices_data(price_ids=[price_id]).get(price_id)
    if data is None:
        return None
    if data.get("billing_scheme") == "tiered" and not data.get("tiers"):
        return None
    return price_spec_from_stripe(data)


def plan_for_price_ids(price_ids: Iterable[str]) -> Plan | None:
    """The Meterdesk plan whose current prices include these Stripe prices."""
    ids = [price_id for price_id in price_ids if price_id]
    if not ids:
        return None
    plan_price = PlanPrice.objects.select_related("plan").filter(stripe_price_id__in=ids).first()
    return plan_price.plan if plan_price else None
