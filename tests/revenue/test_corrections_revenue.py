"""Issue 15: revenue recognition sees a correction's credit note.

The Growth customer of tests/usage/test_corrections_stripe.py: 142 GB billed on the
renewal invoice (volume tier 2: 142 × 8¢ + 1,000¢ = 2,136¢); after finalization staff
void the 110 GB event, and a credit note of 2,136 − 820 = 1,316¢ is issued (32 GB, tier
1: 32 × 10¢ + 500¢ = 820¢). Once dj-stripe mirrors the invoice, what revenue bills and
recognizes for the account drops by exactly those 1,316¢, and the line's revenue is what
32 GB cost.
"""

from datetime import UTC, datetime, timedelta

import pytest

from billing.services.stripe_sync import stripe_sync_everything
from billing.services.test_clocks import test_clock_advance
from revenue.selectors import revenue_lines, revenue_report
from tests.usage.test_corrections_stripe import (  # noqa: F401 (fixtures)
    _fast,
    growth,
    growth_unreported,
)
from usage.models import UsageCorrection
from usage.services.corrections import usage_events_void

pytestmark = pytest.mark.django_db(transaction=True)

FEB_15 = datetime(2026, 2, 15, tzinfo=UTC)
AFTER = FEB_15 + timedelta(hours=2)
NOW = datetime(2026, 3, 20, tzinfo=UTC)  # both months closed


def _totals(account) -> tuple[int, int]:
    report = revenue_report(account=account, currency="usd", now=NOW)
    months = report.by_currency.get("usd", [])
    return sum(m.billed for m in months), sum(m.revenue for m in months)


def _metered_line_amount(account) -> int:
    lines, _, _ = revenue_lines(account=account, currency="usd")
    # The renewal invoice's data-transfer line: billed 142 GB (gross 2,136¢).
    [line] = [x for x in lines if x.period_end == FEB_15 and x.gross == 2136]
    return line.amount


def test_a_credit_note_from_a_correction_lowers_billed_and_recognized_revenue(
    stripe_client,
    growth,  # noqa: F811 (the imported fixture)
):
    clock, account, _cus, meter = growth
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=AFTER)
    stripe_sync_everything()
    billed_before, revenue_before = _totals(account)
    assert _metered_line_amount(account) == 2136  # 142 × 8¢ + 1,000¢

    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g110"], reason="misattributed", now=AFTER
    )
    assert (correction.path, correction.credit_amount) == (UsageCorrection.Path.CREDIT_NOTE, 1316)
    stripe_sync_everything()

    billed_after, revenue_after = _totals(account)
    assert billed_before - billed_after == 1316
    assert revenue_before - revenue_after == 1316
    # The invoice's only line carries the whole note: 2,136 − 1,316 = 820¢, what 32 GB cost.
    assert _metered_line_amount(account) == 820
