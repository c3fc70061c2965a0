"""Build a :class:`PriceSpec` from a Stripe price as Stripe's API returns it.

Accepts the JSON shape of ``GET /v1/prices/{id}`` (with ``expand[]=tiers`` for
tiered prices, since Stripe omits ``tiers`` otherwise) as a plain mapping (from
``json.loads``, dj-stripe's JSON fields, or the emulator) or a stripe-python
``StripeObject`` (converted with ``to_dict()``).

Field rules, as in Stripe's API:

- ``unit_amount_decimal`` (a string, up to 12 decimals) wins over the integer
  ``unit_amount``; the same for a tier's ``unit_amount_decimal`` /
  ``flat_amount_decimal`` over ``unit_amount`` / ``flat_amount``.
- a tier's ``up_to`` is an integer, or ``null`` / ``"inf"`` for the last tier.
- ``transform_quantity`` is ``null`` or ``{divide_by, round: up|down}``.
- ``recurring`` is ``null`` for one-time prices (rated as licensed) or
  ``{interval, interval_count, usage_type, meter}``; a missing ``interval_count``
  is 1, a missing ``usage_type`` is ``metered`` when a meter is set.

JSON numbers that are floats are refused: decode with ``parse_float=Decimal`` if a
producer sends decimal amounts as numbers instead of strings.
"""

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.pricing.allowance import included_units
from billing.pricing.types import PriceSpec, Tier


def _as_mapping(obj: Any, *, what: str) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"{what} must be a mapping or a StripeObject, not {type(obj).__name__}")


def _decimal(value: Any, *, field: str) -> Decimal:
    if isinstance(value, bool | float):
        raise TypeError(f"{field} must be a string, int or Decimal, not {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{field} is not a decimal number: {value!r}") from None
    else:
        raise TypeError(f"{field} must be a string, int or Decimal, not {value!r}")
    if not result.is_finite():
        raise ValueError(f"{field} must be finite, not {value!r}")
    return result


def _integer(value: Any, *, field: str) -> int:
    if isinstance(value, bool | float):
        raise TypeError(f"{field} must be an integer, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str | Decimal):
        number = _decimal(value, field=field)
        if number != number.to_integral_value():
            raise ValueError(f"{field} must be a whole number, not {value!r}")
        return int(number)
    raise TypeError(f"{field} must be an integer, not {value!r}")


def _amount(
    data: Mapping[str, Any], *, decimal_key: str, integer_key: str, where: str
) -> Decimal | None:
    """``decimal_key`` if set, else ``integer_key`` if set, else ``None``."""
    decimal_value = data.get(decimal_key)
    if decimal_value is not None:
        return _decimal(decimal_value, field=f"{where}{decimal_key}")
    integer_value = data.get(integer_key)
    if integer_value is not None:
        return Decimal(_integer(integer_value, field=f"{where}{integer_key}"))
    return None


def _up_to(value: Any, *, field: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "inf"):
        return None
    return _integer(value, field=field)


def _tier(raw: Any, *, index: int) -> Tier:
    data = _as_mapping(raw, what=f"tiers[{index}]")
    where = f"tiers[{index}]."
    return Tier(
        up_to=_up_to(data.get("up_to"), field=f"{where}up_to"),
        unit_amount_decimal=_amount(
            data, decimal_key="unit_amount_decimal", integer_key="unit_amount", where=where
        ),
        flat_amount_decimal=_amount(
            data, decimal_key="flat_amount_decimal", integer_key="flat_amount", where=where
        ),
    )


def _tiers(data: Mapping[str, Any], *, price_id: str) -> tuple[Tier, ...]:
    raw = data.get("tiers")
    if raw is None:
        raise ValueError(f"tiered price {price_id} has no tiers: retrieve it with expand=['tiers']")
    return tuple(_tier(item, index=index) for index, item in enumerate(raw))


def _billing_scheme(data: Mapping[str, Any]) -> str:
    scheme = data.get("billing_scheme")
    if scheme is not None:
        return scheme
    return "tiered" if data.get("tiers") else "per_unit"


def _usage_type(recurring: Mapping[str, Any]) -> str:
    """``recurring.usage_type``; when absent, ``metered`` if a meter is set (Stripe
    only allows meters on metered prices), else ``licensed``."""
    usage_type = recurring.get("usage_type")
    if usage_type is not None:
        return usage_type
    return "metered" if recurring.get("meter") else "licensed"


def price_spec_from_stripe(obj: Mapping[str, Any]) -> PriceSpec:
    """Convert a Stripe price (JSON mapping or ``StripeObject``) to a :class:`PriceSpec`.

    ``included_units`` is derived with :func:`billing.pricing.allowance.included_units`.
    Raises ``ValueError``/``TypeError`` for prices the engine cannot rate (a
    ``custom_unit_amount`` price without ``unit_amount``, a tiered price fetched
    without its tiers, float amounts).
    """
    data = _as_mapping(obj, what="price")
    price_id = str(data.get("id") or "")
    scheme = _billing_scheme(data)

    transform = data.get("transform_quantity")
    divide_by: int | None = None
    transform_round: str | None = None
    if transform is not None:
        transform = _as_mapping(transform, what="transform_quantity")
        divide_by = _integer(transform.get("divide_by"), field="transform_quantity.divide_by")
        transform_round = transform.get("round")

    recurring_raw = data.get("recurring")
    recurring = _as_mapping(recurring_raw, what="recurring") if recurring_raw else {}
    interval_count = recurring.get("interval_count")

    spec = PriceSpec(
        id=price_id,
        currency=str(data.get("currency") or "").lower(),
        billing_scheme=scheme,
        unit_amount_decimal=(
            _amount(data, decimal_key="unit_amount_decimal", integer_key="unit_amount", where="")
            if scheme == "per_unit"
            else None
        ),
        tiers_mode=data.get("tiers_mode") if scheme == "tiered" else None,
        tiers=_tiers(data, price_id=price_id) if scheme == "tiered" else (),
        transform_divide_by=divide_by,
        transform_round=transform_round,
        usage_type=_usage_type(recurring),
        interval=recurring.get("interval"),
        interval_count=(
            1
            if interval_count is None
            else _integer(interval_count, field="recurring.interval_count")
        ),
        nickname=data.get("nickname"),
        lookup_key=data.get("lookup_key"),
        meter=recurring.get("meter"),
    )
    return replace(spec, included_units=included_units(spec))
