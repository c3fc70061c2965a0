from django import template

from billing.money import format_money

register = template.Library()


@register.filter
def money(minor: int | None, currency: str = "usd") -> str:
    """Minor units to a display string: the only place amounts leave integers."""
    if minor is None:
        return "—"
    return format_money(int(minor), currency)
