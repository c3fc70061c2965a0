"""Meterdesk's pricing engine: Stripe's pricing rules as pure functions.

No database, no network, no Django. Amounts are ``Decimal`` in minor units while
computing and ``int`` minor units on line items, rounded once per line with
ROUND_HALF_UP by :func:`billing.money.to_minor_units`.

This is an independent implementation of the rules that ``stripe_emulator``
also implements; tests compare the two, so they must never share code.
"""

from billing.pricing.allowance import included_units
from billing.pricing.breakdown import Breakdown, BreakdownRow, PriceTerm, breakdown, price_table
from billing.pricing.budget import bill_amount, units_until
from billing.pricing.credits import (
    CreditApplication,
    CreditedInvoice,
    CreditGrantSpec,
    apply_credits,
    credit_order,
    eligible_grants,
)
from billing.pricing.from_stripe import price_spec_from_stripe
from billing.pricing.period import estimate_current_period, lines_total, rate_line, rate_period
from billing.pricing.rating import billable_quantity, line_amount, rate, rate_quantity
from billing.pricing.types import LineItem, PriceSpec, Rating, Tier, TierCharge

__all__ = [
    "Breakdown",
    "BreakdownRow",
    "CreditApplication",
    "CreditGrantSpec",
    "CreditedInvoice",
    "LineItem",
    "PriceSpec",
    "PriceTerm",
    "Rating",
    "Tier",
    "TierCharge",
    "apply_credits",
    "bill_amount",
    "billable_quantity",
    "breakdown",
    "credit_order",
    "eligible_grants",
    "estimate_current_period",
    "included_units",
    "line_amount",
    "lines_total",
    "price_spec_from_stripe",
    "price_table",
    "rate",
    "rate_line",
    "rate_period",
    "rate_quantity",
    "units_until",
]
