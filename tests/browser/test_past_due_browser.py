"""The past-due path end to end in Chromium: a failed first payment puts the amount due,
the deadline and a Pay link on the dashboard; paying on the (emulator's) hosted invoice
page clears the banner on the still-open dashboard, without a reload, when Stripe's
invoice.paid webhook arrives."""

from datetime import timedelta

import pytest

from billing.mirror.invoices import open_invoices_for_account
from billing.models import Account
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from billing.services.webhook_endpoints import webhook_endpoint_register
from tests.conftest import ROOT, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")


def _status(account: Account) -> str:
    account.refresh_from_db()
    return account.status


def test_failed_payment_banner_then_pay_on_hosted_page_clears_it_live(
    live_server, page, browser, demo_catalog, settings
):
    settings.BILLING_PAST_DUE_GRACE_HOURS = 72
    webhook_endpoint_register(base_url=live_server.url)
    account = account_create(name="Declined Co", billing_email="ap@declined.example")
    make_user(account, "dora", email="dora@declined.example")
    subscription_create(
        account=account, plan=demo_catalog["pro"], payment_method="pm_card_chargeCustomerFail"
    )
    wait_for(lambda: _status(account) == "past_due", timeout=60, what="past_due")
    wait_for(lambda: open_invoices_for_account(account=account), timeout=60, what="open invoice")
    [invoice] = open_invoices_for_account(account=account)
    # Pro's first invoice: the $99.00 base fee in advance (9,900¢); API calls and seats
    # bill in arrears, so a (flexible-mode) first invoice leaves them off: 9,900¢ = $99.00.
    assert [(line.kind, line.amount) for line in invoice.lines] == [("base_fee", 9900)]
    assert invoice.amount_remaining == 9900
    deadline = account.past_due_since + timedelta(hours=72)

    _log_in(page, live_server, "dora")
    banner = page.get_by_test_id("status-banner")
    assert "Payment failed — $99.00 due." in banner.inner_text()
    shown = page.get_by_test_id("suspension-deadline")
    assert shown.inner_text() == f"{deadline:%b} {deadline.day}, {deadline:%Y, %H:%M} UTC"
    pay = page.get_by_test_id("pay-invoice")
    assert pay.get_attribute("href") == invoice.hosted_invoice_url
    assert page.get_by_test_id("update-payment-method").is_visible()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "past-due-1280.png"), full_page=True)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    _log_in(small, live_server, "dora")
    small.get_by_test_id("pay-invoice").wait_for()
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    small.screenshot(path=str(SCREENSHOTS / "past-due-390.png"), full_page=True)
    phone.close()

    # "Pay invoice" opens Stripe's hosted invoice page in a new tab; pay with the test card.
    with page.context.expect_page() as opened:
        pay.click()
    hosted = opened.value
    hosted.wait_for_load_state()
    assert "Amount due: 99.00 USD" in hosted.content()
    hosted.get_by_label("Pay with").select_option("pm_card_visa")
    hosted.get_by_role("button", name="Pay 99.00 USD").click()
    hosted.get_by_text("Payment received. Thank you!").wait_for()
    assert hosted.locator("#status").inner_text() == "paid"
    hosted.screenshot(path=str(SCREENSHOTS / "past-due-hosted-invoice-paid.png"), full_page=True)

    # Back on the dashboard: the banner goes with the next poll after the webhook.
    page.bring_to_front()
    page.get_by_test_id("status-banner").wait_for(state="detached", timeout=20_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert _status(account) == "active" and account.past_due_since is None
    assert open_invoices_for_account(account=account) == []
