"""Credits in Chromium: the dashboard's Credits card with the live balance, then the
Credits page, where the owner buys a top-up (an amount under the minimum first).
Screenshots in var/screenshots/credits-*.png.

Time is pinned: Starter (0.1¢ a call) on a Stripe test clock from Mar 1 00:00 UTC
(period Mar 1 - Apr 1), Django's clock travelled to Mar 5 00:00 (ticking, for the live
server). A $5.00 welcome grant and a $3.00 one expiring Mar 20; 2,000 calls so far.
"""

from datetime import UTC, datetime

import pytest
import time_machine

from billing.models_credits import CreditGrant
from tests.browser.test_dashboard_browser import _log_in
from tests.conftest import ROOT
from tests.factories import make_user
from tests.usage.test_credit_balance import calls, make_grant, starter  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"
T = datetime(2026, 3, 5, tzinfo=UTC)


def _text(locator) -> str:
    return " ".join(locator.inner_text().split())


def test_customer_sees_live_credits_and_buys_a_top_up(
    live_server,
    page,
    browser,
    starter,  # noqa: F811
    monkeypatch,
):
    # The purchase's Stripe calls run after the commit; left out, it stays awaiting payment.
    monkeypatch.setattr("billing.services.credits.credit_grant_queue", lambda **kwargs: None)
    make_grant(starter, amount=500, stripe_id="credgr_welcome")
    make_grant(
        starter,
        amount=300,
        stripe_id="credgr_spring",
        name="Spring promo",
        expires_at=datetime(2026, 3, 20, tzinfo=UTC),
    )
    make_user(starter, "olga", email="olga@credit.example")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with time_machine.travel(T, tick=True):
        calls(starter, 2_000, at=datetime(2026, 3, 2, tzinfo=UTC), now=T, prefix="b")
        _log_in(page, live_server, "olga")
        card = page.get_by_test_id("credits-card")
        card.wait_for()
        # 2,000 calls x 0.1¢ = 200¢ of the 500¢ usable this period: 300¢ left. The Mar 20
        # grant expires before the invoice (Apr 1): granted 800¢, not usable.
        assert _text(page.get_by_test_id("credits-remaining")) == "$3.00"
        assert _text(page.get_by_test_id("credits-used")) == "$2.00"
        assert _text(page.get_by_test_id("credits-granted")) == "$8.00"
        # Projection 500 calls a day: 3,005 more calls -> Mar 11 (test_credit_balance).
        outlook = _text(page.get_by_test_id("credits-run-out"))
        assert outlook.startswith("At your current pace, your credits run out around Mar 11")
        assert "$3.00 of Spring promo expires Mar 20" in _text(
            page.get_by_test_id("credits-expiring")
        )
        # The projected 1,550¢ would use every usable cent: 500¢.
        assert _text(page.get_by_test_id("credits-at-period-end")).startswith(
            "At period end, credits are expected to pay $5.00 of your usage charges"
        )
        # The estimate tile: 15,500 projected calls x 0.1¢ = 1,550¢ before credits;
        # 1,550 - 500 = 1,050¢ = $10.50 after.
        assert _text(page.get_by_test_id("estimated-invoice")) == "$15.50"
        assert _text(page.get_by_test_id("estimated-after-credits")) == (
            "before credits; about $10.50 after"
        )
        card.scroll_into_view_if_needed()
        card.screenshot(path=str(SCREENSHOTS / "credits-card.png"))
        page.screenshot(path=str(SCREENSHOTS / "credits-dashboard-1280.png"), full_page=True)

        page.get_by_test_id("credits-link").click()
        page.wait_for_url(f"{live_server.url}/dashboard/credits/")
        form = page.get_by_test_id("top-up-form")
        form.get_by_label("Amount (USD)").fill("2")
        form.get_by_role("button", name="Buy credits").click()
        page.get_by_text("Enter at least 5.00 USD.").wait_for()
        assert not CreditGrant.objects.filter(source="top_up").exists()
        page.screenshot(path=str(SCREENSHOTS / "credits-top-up-error-1280.png"), full_page=True)

        form = page.get_by_test_id("top-up-form")
        form.get_by_label("Amount (USD)").fill("25")
        form.get_by_role("button", name="Buy credits").click()
        page.get_by_text("Awaiting payment").wait_for()
        assert _text(page.locator(".messages")) == (
            "Top-up of $25.00 ordered: we send an invoice for it, and the credits are added "
            "as soon as it is paid."
        )
        [grant] = CreditGrant.objects.filter(source="top_up")
        assert (grant.amount, grant.purchase_amount, grant.status) == (
            2_500,
            2_500,
            "awaiting_payment",
        )
        rows = page.get_by_test_id("credit-grants")
        assert "Top-up Prepaid $25.00 — Never Awaiting payment" in _text(rows)
        page.screenshot(path=str(SCREENSHOTS / "credits-page-1280.png"), full_page=True)

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        small = phone.new_page()
        _log_in(small, live_server, "olga")
        small.goto(f"{live_server.url}/dashboard/credits/")
        small.get_by_test_id("credits-card").wait_for()
        small.screenshot(path=str(SCREENSHOTS / "credits-page-390.png"), full_page=True)
        phone.close()
