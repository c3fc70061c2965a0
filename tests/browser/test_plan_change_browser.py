"""Plan change in-app, in Chromium (dashboards.plan_change_views): an owner upgrades now
from Starter to Pro, sees Stripe's proration preview, confirms, and the page shows Pro
once the emulator's ``customer.subscription.updated`` webhook has reached the mirror
(the page polls; no reload). A viewer gets no change controls.

Time is Stripe's: the customer is on a test clock, subscribed 2026-04-01 00:00 UTC and
advanced to Apr 21 12:00 UTC, so the period is [Apr 1, May 1) = 30 days and 9.5 days are
left. The preview's proration date is the clock's time (the plan page reads Stripe's time
only). Django's clock is pinned to the test clock only where no webhook must arrive: the
emulator signs deliveries with the wall clock, which dj-stripe checks against its own
(300 s tolerance). Screenshots in
var/screenshots/plan-change-*.png, at 1280 px and 390 px.
"""

from datetime import UTC, datetime

import pytest
import time_machine

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Membership
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from billing.services.webhook_endpoints import webhook_endpoint_register
from tests.conftest import ROOT
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"

APR_1 = datetime(2026, 4, 1, tzinfo=UTC)
APR_21_NOON = datetime(2026, 4, 21, 12, tzinfo=UTC)


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")


def _text(locator) -> str:
    return " ".join(locator.inner_text().split())


@pytest.fixture
def initech(live_server, stripe_client, demo_catalog):
    """Initech on Starter (metered only, no base fee) since Apr 1, its clock at Apr 21 noon;
    Stripe's webhooks go to the live server."""
    webhook_endpoint_register(base_url=live_server.url)
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(APR_1.timestamp())}
    )
    account = account_create(name="Initech", billing_email="ap@initech.example")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=APR_21_NOON)
    make_user(account, "olga", Membership.Role.OWNER)
    make_user(account, "victor", Membership.Role.MEMBER)
    return account


def test_owner_upgrades_now_and_sees_the_new_plan_when_the_webhook_arrives(
    live_server, page, browser, initech
):
    _log_in(page, live_server, "olga")
    page.get_by_role("link", name="Plans").click()
    page.get_by_test_id("simulator-change-plan").click()
    page.wait_for_url(f"{live_server.url}/dashboard/plan/")
    assert _text(page.get_by_test_id("current-plan")) == "Initech is on Starter."
    page.get_by_label("New plan").select_option("pro")
    # At the end of the period first: nothing due now, Pro's $99.00 billed on May 1.
    page.get_by_label("At the end of this period, on May 1, 2026", exact=False).check()
    page.get_by_role("button", name="Preview the change").click()
    page.get_by_role("button", name="Switch to Pro on May 1, 2026").wait_for()
    assert _text(page.get_by_test_id("plan-due-now")).startswith("Due now: $0.00.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "plan-change-period-end-1280.png"), full_page=True)
    page.get_by_label("Now:", exact=False).check()
    page.get_by_role("button", name="Preview the change").click()
    # The new preview replaces the period-end one: its button names the amount.
    confirm = page.get_by_role("button", name="Switch to Pro now and pay $31.35")
    confirm.wait_for()
    preview = page.get_by_test_id("plan-preview")

    # Pro's $99.00 base fee (9,900¢) for what is left of the period: Apr 21 12:00 to May 1
    # 00:00 is 9.5 of April's 30 days, 9,900 x 9.5 / 30 = 94,050 / 30 = 3,135¢ = $31.35.
    # Starter has no licensed price, so nothing is credited; metered prices are not
    # prorated (usage bills in arrears).
    rows = preview.get_by_test_id("plan-preview-lines").locator("tbody tr")
    assert rows.count() == 1
    assert _text(rows.first.locator("td").last) == "$31.35"
    assert _text(preview.get_by_test_id("plan-due-now")).startswith("Due now: $31.35")
    assert page.locator('input[name="total"]').get_attribute("value") == "3135"
    assert page.locator('input[name="proration_date"]').get_attribute("value") == str(
        int(APR_21_NOON.timestamp())
    )

    page.screenshot(path=str(SCREENSHOTS / "plan-change-preview-1280.png"), full_page=True)

    confirm.click()
    # The mirror changes only when Stripe's webhook reaches dj-stripe: the region polls.
    page.get_by_test_id("plan-status-done").wait_for(timeout=30_000)
    assert _text(page.get_by_test_id("plan-status-done")) == "Done: you are on Pro now."
    page.screenshot(path=str(SCREENSHOTS / "plan-change-done-1280.png"), full_page=True)
    # The rest of the page follows: the header, Pro gone from the choices (Starter back),
    # and no preview left whose button could be pressed again.
    assert _text(page.get_by_test_id("current-plan")) == "Initech is on Pro."
    options = page.get_by_label("New plan").locator("option")
    assert "pro" not in options.evaluate_all("os => os.map(o => o.value)")
    assert "starter" in options.evaluate_all("os => os.map(o => o.value)")
    assert page.get_by_test_id("plan-preview").count() == 0
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert subscription_state_for_account(account=initech).plan.key == "pro"
    page.screenshot(path=str(SCREENSHOTS / "plan-change-done-1280.png"), full_page=True)

    # The same page on a phone: nothing wider than the screen.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    _log_in(small, live_server, "olga")
    small.goto(f"{live_server.url}/dashboard/plan/")
    small.get_by_label("New plan").select_option("bulk")
    small.get_by_role("button", name="Preview the change").click()
    small.get_by_test_id("plan-preview").wait_for()
    # Back down to Bulk (no base fee): Pro's unused 9.5 of 30 days come back as a credit,
    # -9,900 x 9.5 / 30 = -3,135¢; nothing is due and $31.35 goes to the credit balance.
    assert _text(small.get_by_test_id("plan-due-now")) == (
        "Due now: $0.00 ($31.35 goes to your credit balance for later invoices)."
    )
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    small.screenshot(path=str(SCREENSHOTS / "plan-change-preview-390.png"), full_page=True)
    phone.close()


def test_a_viewer_sees_no_change_controls(live_server, page, initech):
    _log_in(page, live_server, "victor")
    # Viewers see amounts by default (BILLING_VIEWERS_SEE_AMOUNTS), so the Plans page (the
    # simulator) is theirs to read; its "Change plan" button is not.
    with time_machine.travel(APR_21_NOON, tick=True):  # Django's clock = the test clock
        page.get_by_role("link", name="Plans").click()
        page.wait_for_url(f"{live_server.url}/dashboard/simulator/")
    assert page.get_by_role("heading", name="Compare plans").is_visible()
    assert page.get_by_test_id("simulator-change-plan").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "plan-change-viewer-simulator-1280.png"), full_page=True)
    # And the plan page itself, typed in, is refused with nothing to press.
    response = page.goto(f"{live_server.url}/dashboard/plan/")
    assert response.status == 403
    assert page.get_by_test_id("forbidden").is_visible()
    assert page.locator("form[data-testid=plan-form], form[data-testid=plan-confirm]").count() == 0
    assert page.get_by_role("button", name="Preview the change").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "plan-change-viewer-1280.png"), full_page=True)
    assert subscription_state_for_account(account=initech).plan.key == "starter"
