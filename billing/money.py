"""Money: the one place where an exact amount becomes an integer in minor units.

Stripe expresses every "amount" as an integer in the currency's minor unit (cents
for usd, yen for jpy). Prices may carry sub-minor-unit precision
(``unit_amount_decimal``, up to 12 decimal places), so intermediate results are
``Decimal`` values *already expressed in minor units* (``Decimal("350.35")`` means
350.35 cents). :func:`to_minor_units` is the single, explicit rounding step.

Rules: never ``float``, never ``int(x * 100)``, never ``/ 100``. Converting minor
units to major units for display uses ``Decimal.scaleb`` with the currency's
exponent; an amount a person typed in major units becomes minor units through
:func:`major_to_minor`.
"""

from decimal import (
    ROUND_05UP,
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
)

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)

# https://docs.stripe.com/currencies#three-decimal
THREE_DECIMAL_CURRENCIES: frozenset[str] = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

_ROUNDING_MODES = frozenset(
    {
        ROUND_05UP,
        ROUND_CEILING,
        ROUND_DOWN,
        ROUND_FLOOR,
        ROUND_HALF_DOWN,
        ROUND_HALF_EVEN,
        ROUND_HALF_UP,
        ROUND_UP,
    }
)

# Wide enough that quantizing any realistic amount never runs out of digits.
_QUANTIZE_CONTEXT = Context(prec=200)

_SYMBOLS: dict[str, str] = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
}


def currency_exponent(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit as Stripe's API uses it.

    0 for Stripe's zero-decimal currencies (jpy, krw, ...), 3 for its three-decimal
    currencies (kwd, bhd, ...), 2 for everything else (usd, eur, ...).
    """
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_minor_units(amount: Decimal, *, rounding: str = ROUND_HALF_UP) -> int:
    """Round ``amount`` (already in minor units) to a whole number of minor units.

    This is the only function that turns an exact amount into an integer amount.
    The default is Stripe's rule for line amounts: round half up, i.e. to the
    nearest minor unit with halves away from zero (``Decimal("1.5")`` -> 2,
    ``Decimal("350.35")`` -> 350).

    ``float`` is refused (``TypeError``): it cannot represent most decimal amounts.
    ``int`` is accepted as it is already exact.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"to_minor_units() needs a Decimal (or int), not {type(amount).__name__}")
    if rounding not in _ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode: {rounding!r}")
    if isinstance(amount, int):
        return amount
    if not amount.is_finite():
        raise ValueError(f"cannot convert a non-finite amount to minor units: {amount}")
    return int(amount.quantize(Decimal(1), rounding=rounding, context=_QUANTIZE_CONTEXT))


def major_to_minor(amount: Decimal, currency: str, *, rounding: str = ROUND_HALF_UP) -> int:
    """An amount in ``currency``'s major unit (what a person types: 250.50 dollars) as a
    whole number of minor units: shifted by the currency's exponent, then rounded by
    :func:`to_minor_units` (half up unless ``rounding`` says otherwise).

    ``major_to_minor(Decimal("250.50"), "usd") == 25050``,
    ``major_to_minor(Decimal("1234.5"), "jpy") == 1235`` (no minor unit: 1,234.5 yen
    rounds half up), ``major_to_minor(Decimal("1.2345"), "kwd") == 1235`` (1,234.5 fils).
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"major_to_minor() needs a Decimal (or int), not {type(amount).__name__}")
    return to_minor_units(
        Decimal(amount).scaleb(currency_exponent(currency), context=_QUANTIZE_CONTEXT),
        rounding=rounding,
    )


def format_money(minor: int, currency: str) -> str:
    """Format an integer amount in minor units for display.

    Uses the currency's exponent (see :func:`currency_exponent`) and thousands
    separators: ``format_money(123456, "usd") == "$1,234.56"``,
    ``format_money(1235, "jpy") == "¥1,235"``,
    ``format_money(-150, "eur") == "-€1.50"``,
    ``format_money(1000, "chf") == "CHF 10.00"``.
    """
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"format_money() needs an int amount in minor units, not {minor!r}")
    code = currency.lower()
    exponent = currency_exponent(code)
    major = Decimal(abs(minor)).scaleb(-exponent)
    number = f"{major:,.{exponent}f}"
    sign = "-" if minor < 0 else ""
    symbol = _SYMBOLS.get(code)
    if symbol is not None:
        return f"{sign}{symbol}{number}"
    return f"{sign}{code.upper()} {number}"


def format_unit_amount(amount: Decimal | int, currency: str) -> str:
    """Format a unit price (exact, in minor units, sub-minor-unit allowed) for display,
    with at least the currency's decimals and as many more as the price has:
    ``format_unit_amount(Decimal("0.2"), "usd") == "$0.002"``,
    ``format_unit_amount(Decimal(5), "usd") == "$0.05"``,
    ``format_unit_amount(Decimal("0.35"), "jpy") == "¥0.35"``."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"format_unit_amount() needs a Decimal (or int), not {amount!r}")
    exponent = currency_exponent(currency)
    major = Decimal(amount).scaleb(-exponent, context=_QUANTIZE_CONTEXT)
    places = max(exponent, -major.normalize(context=_QUANTIZE_CONTEXT).as_tuple().exponent)
    number = f"{abs(major):,.{places}f}"
    code = currency.lower()
    sign = "-" if major < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{code.upper()} {number}"
