"""Unit labels, single-value ranges and times with their zone (issue 14, item 7)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.template import Context, Template

from billing.units import quantity_text, unit_for, unit_plural


@pytest.mark.parametrize(
    ("label", "plural"),
    [
        ("call", "calls"),
        ("seat", "seats"),
        ("transaction", "transactions"),
        ("GB", "GB"),  # a symbol: "215 GB", never "215 GBs"
        ("MB", "MB"),
        ("TB", "TB"),
        ("kWh", "kWh"),
        ("h", "h"),
        ("ms", "ms"),
        ("query", "queries"),
        ("day", "days"),
        ("box", "boxes"),
        ("person", "people"),
    ],
)
def test_plurals(label: str, plural: str) -> None:
    assert unit_plural(label) == plural


def test_singular_only_for_exactly_one() -> None:
    assert unit_for("call", 1) == "call"
    assert unit_for("call", 0) == "calls"
    assert unit_for("call", 2) == "calls"
    assert quantity_text(13_707, "call") == "13,707 calls"
    assert quantity_text(215, "GB") == "215 GB"
    assert quantity_text(1, "seat") == "1 seat"


def _render(source: str, **context) -> str:
    return Template("{% load units %}" + source).render(Context(context))


def test_unit_label_filter() -> None:
    assert _render("{{ 215 }} {{ u|unit_label:215 }}", u="GB") == "215 GB"
    assert _render("{{ u|unit_label:n }}", u="call", n=1) == "call"
    assert _render("{{ u|unit_label }}", u="seat") == "seats"


def test_ranges_show_a_single_value_once() -> None:
    # 550 cents both ends: "$5.50", not "$5.50 – $5.50"
    assert _render("{% money_range 550 550 'usd' %}") == "$5.50"
    assert _render("{% money_range 550 725 'usd' %}") == "$5.50 – $7.25"
    assert _render("{% number_range 3 3 %}") == "3"
    assert _render("{% number_range 1200 1450 %}") == "1,200 – 1,450"


def test_times_carry_utc() -> None:
    moment = datetime(2025, 11, 30, 14, 5, tzinfo=UTC)
    assert _render("{{ t|utc }}", t=moment) == "Nov 30, 14:05 UTC"
    # A time in another zone is converted: 15:05 at +01:00 is 14:05 UTC.
    cet = moment.astimezone(timezone(timedelta(hours=1)))
    assert _render("{{ t|utc }}", t=cet) == "Nov 30, 14:05 UTC"
