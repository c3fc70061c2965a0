"""Template filters for units, ranges and times shown to customers."""

from datetime import UTC, datetime

from django import template
from django.utils.dateformat import format as date_format

from billing.money import format_money
from billing.units import unit_for

register = template.Library()


@register.filter
def unit_label(label: str, count=None) -> str:
    """``{{ meter.unit_label|unit_label:line.usage }}``: "call"/"calls", "GB" stays "GB";
    without a count, the plural."""
    return unit_for(label or "", count)


@register.simple_tag
def money_range(low: int, high: int, currency: str = "usd") -> str:
    """ "$5.50 – $7.25", or just "$5.50" when both ends are the same."""
    if low == high:
        return format_money(int(low), currency)
    return f"{format_money(int(low), currency)} – {format_money(int(high), currency)}"


@register.simple_tag
def number_range(low: int, high: int) -> str:
    """ "1,200 – 1,450", or just "1,200" when both ends are the same."""
    if low == high:
        return f"{int(low):,}"
    return f"{int(low):,} – {int(high):,}"


@register.filter
def utc(moment: datetime | None, fmt: str = "M j, H:i") -> str:
    """A time with its zone, always in UTC: "Nov 30, 14:05 UTC"."""
    if moment is None:
        return "—"
    return f"{date_format(moment.astimezone(UTC), fmt)} UTC"
