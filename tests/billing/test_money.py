"""billing.money: the one rounding function and currency-aware formatting.

Expected values are worked out by hand in the comments.
"""

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

import pytest

from billing.money import (
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    currency_exponent,
    format_money,
    major_to_minor,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        # 0.35 x 1,001 = 350.35 -> below .5 -> 350
        (Decimal("350.35"), 350),
        # exactly half rounds up: 1.5 -> 2, 2.5 -> 3 (banker's rounding would give 2)
        (Decimal("1.5"), 2),
        (Decimal("2.5"), 3),
        # just below half
        (Decimal("0.499999999999"), 0),
        # 12 decimals just above half
        (Decimal("0.500000000001"), 1),
        # half away from zero for a credit
        (Decimal("-1.5"), -2),
        (Decimal("0"), 0),
        (Decimal("9900"), 9900),
        # exponent form: 1.2345E+3 = 1,234.5 -> 1,235
        (Decimal("1.2345E+3"), 1235),
    ],
)
def test_to_minor_units_rounds_half_up(amount: Decimal, expected: int) -> None:
    assert to_minor_units(amount) == expected


def test_to_minor_units_explicit_rounding_modes() -> None:
    # 1.9 truncated -> 1; 2.5 half-even -> 2
    assert to_minor_units(Decimal("1.9"), rounding=ROUND_DOWN) == 1
    assert to_minor_units(Decimal("2.5"), rounding=ROUND_HALF_EVEN) == 2


def test_to_minor_units_keeps_huge_amounts_exact() -> None:
    # 30 digits before the point, more than the default 28-digit context holds
    amount = Decimal("123456789012345678901234567890.5")
    assert to_minor_units(amount) == 123456789012345678901234567891


def test_to_minor_units_accepts_int_as_is() -> None:
    assert to_minor_units(469) == 469


@pytest.mark.parametrize("bad", [1.5, 0.1, True, "1.5", None])
def test_to_minor_units_refuses_non_decimals(bad: object) -> None:
    with pytest.raises(TypeError):
        to_minor_units(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_to_minor_units_refuses_non_finite(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        to_minor_units(bad)


def test_to_minor_units_refuses_unknown_rounding_mode() -> None:
    with pytest.raises(ValueError):
        to_minor_units(Decimal("1.5"), rounding="ROUND_SOMETIMES")


def test_currency_tables_follow_stripe() -> None:
    assert {"jpy", "krw", "vnd", "clp"} <= ZERO_DECIMAL_CURRENCIES
    assert "usd" not in ZERO_DECIMAL_CURRENCIES
    assert "kwd" in THREE_DECIMAL_CURRENCIES
    assert currency_exponent("usd") == 2
    assert currency_exponent("EUR") == 2
    assert currency_exponent("jpy") == 0
    assert currency_exponent("krw") == 0
    assert currency_exponent("kwd") == 3


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        # 123,456 cents = $1,234.56
        (123456, "usd", "$1,234.56"),
        # 5 cents
        (5, "usd", "$0.05"),
        (0, "usd", "$0.00"),
        # the Pro period total: 9,900 + 469 = 10,369 cents
        (10369, "usd", "$103.69"),
        # -150 cents
        (-150, "eur", "-€1.50"),
        # yen have no minor unit: 3,702 yen
        (3702, "jpy", "¥3,702"),
        (3702, "JPY", "¥3,702"),
        # won: zero-decimal, no symbol in the table
        (50000, "krw", "KRW 50,000"),
        # dinar: three decimals, 1,235 fils = 1.235
        (1235, "kwd", "KWD 1.235"),
        (1000, "chf", "CHF 10.00"),
    ],
)
def test_format_money(minor: int, currency: str, expected: str) -> None:
    assert format_money(minor, currency) == expected


@pytest.mark.parametrize("bad", [1.5, Decimal("1.5"), True])
def test_format_money_needs_integer_minor_units(bad: object) -> None:
    with pytest.raises(TypeError):
        format_money(bad, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        # $250.50 = 250.50 × 10² = 25,050 cents
        ("250.50", "usd", 25050),
        # $0.005 = 0.5 cents: half up to 1 cent; $0.0049 = 0.49 cents: down to 0
        ("0.005", "usd", 1),
        ("0.0049", "usd", 0),
        # half up means away from zero: -$1.005 = -100.5 cents -> -101
        ("-1.005", "usd", -101),
        # yen have no minor unit: ¥1,234 = 1,234; ¥1,234.5 half up -> 1,235
        ("1234", "jpy", 1234),
        ("1234.5", "jpy", 1235),
        ("1234.49", "JPY", 1234),
        # dinar: three decimals, 1.235 KWD = 1,235 fils; 1.2345 KWD = 1,234.5 fils -> 1,235
        ("1.235", "kwd", 1235),
        ("1.2345", "kwd", 1235),
        # an int is whole major units: 7 USD = 700 cents
        (7, "usd", 700),
    ],
)
def test_major_to_minor(amount, currency: str, expected: int) -> None:
    value = Decimal(amount) if isinstance(amount, str) else amount
    assert major_to_minor(value, currency) == expected


def test_major_to_minor_rounding_is_explicit() -> None:
    # 1.2345 KWD = 1,234.5 fils: half up 1,235, half even 1,234, down 1,234
    assert major_to_minor(Decimal("1.2345"), "kwd") == 1235
    assert major_to_minor(Decimal("1.2345"), "kwd", rounding=ROUND_HALF_EVEN) == 1234
    assert major_to_minor(Decimal("1.2349"), "kwd", rounding=ROUND_DOWN) == 1234


@pytest.mark.parametrize("bad", [2.5, "2.50", True])
def test_major_to_minor_refuses_inexact_input(bad: object) -> None:
    with pytest.raises(TypeError):
        major_to_minor(bad, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("0.2"), "usd", "$0.002"),  # a fifth of a cent
        (Decimal(5), "usd", "$0.05"),
        (Decimal(50), "usd", "$0.50"),
        (Decimal(1000), "usd", "$10.00"),  # 1E+3 normalized: still two decimals
        (Decimal("0.35"), "jpy", "¥0.35"),  # jpy has no minor unit: 0.35 yen
        (Decimal("123456.7"), "eur", "€1,234.567"),
        (Decimal("0.000000000001"), "usd", "$0.00000000000001"),  # 12 decimals of a cent
        (0, "chf", "CHF 0.00"),
    ],
)
def test_format_unit_amount_keeps_sub_cent_digits(amount, currency, expected):
    from billing.money import format_unit_amount

    assert format_unit_amount(amount, currency) == expected
