"""A dispute end to end, in Chromium (issue 15): a customer walks from an invoice line
down to one hour's events and disputes it; staff resolve it in admin by voiding the event
(a correction); the customer sees the resolution on the line and the credit note in the
Corrections list of the Invoices page, and got one e-mail."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from tests.browser.test_dashboard_browser import _log_in
from tests.dashboards.test_drilldown import _period, _renewal, trio_plan  # noqa: F401
from tests.factories import make_user
from usage.models import UsageDispute

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_disputed_hour_is_corrected_and_the_customer_sees_the_credit_note(
    live_server,
    page,
    browser,
    stripe_client,
    trio_plan,  # noqa: F811
):
    # 10 gigabyte events valued 1..5 twice (30 GB); event 1 (2 GB) at Sep 1 10:42.
    account = _period(stripe_client, trio_plan, {"bravo": {"data_transfer_gb": 10}})["bravo"]
    invoice = _renewal(account)
    make_user(account, "carol", email="carol@bravo.example")
    _log_in(page, live_server, "carol")
    page.goto(f"{live_server.url}/dashboard/invoices/")
    page.get_by_test_id("drilldown-link").first.click()
    page.locator('a[href*="/days/2026-09-01/"]').click()
    page.locator('a[href*="/hours/2026-09-01T10/"]').click()
    assert page.get_by_text("bravo-data_transfer_gb-1").is_visible()
    form = page.get_by_test_id("dispute-form")
    assert form.get_by_label("Day").input_value() == "2026-09-01"
    assert form.get_by_label("Hour").input_value() == "10"
    form.get_by_label("Message").fill("The 2 GB at 10:42 was uploaded twice.")
    form.get_by_role("button", name="Open a dispute").click()
    page.wait_for_url(f"**/invoices/{invoice.id}/lines/*/")
    assert page.get_by_test_id("dispute-status").inner_text() == "Open"
    [dispute] = UsageDispute.objects.all()

    get_user_model().objects.create_superuser("boss", "boss@x.test", "pw-boss-123")
    staff = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    staff.goto(f"{live_server.url}/admin/login/")
    staff.get_by_label("Username").fill("boss")
    staff.get_by_label("Password").fill("pw-boss-123")
    staff.get_by_role("button", name="Log in").click()
    staff.goto(f"{live_server.url}/admin/usage/usagedispute/")
    assert "bravo Co" in staff.locator("#result_list").inner_text()
    staff.goto(f"{live_server.url}/admin/usage/usagedispute/{dispute.pk}/change/")
    staff.get_by_label("Resolve with").select_option("correction")
    staff.get_by_label("Reply").fill("Duplicate upload")
    staff.get_by_label("Void identifiers").fill("bravo-data_transfer_gb-1")
    staff.get_by_role("button", name="Save", exact=True).click()
    staff.wait_for_url(f"{live_server.url}/admin/usage/usagedispute/")
    staff.context.close()

    page.reload()
    assert page.get_by_test_id("dispute-status").inner_text() == "Resolved"
    # 30 GB billed, 28 GB once the 2 GB event is voided, at 5¢ a GB: 150 - 140 = 10¢.
    assert "credit note of $0.10" in page.get_by_test_id("dispute-correction").inner_text()
    page.goto(f"{live_server.url}/dashboard/invoices/")
    correction = page.get_by_test_id("correction")
    assert correction.count() == 1
    assert "Duplicate upload" in correction.inner_text()
    assert "credit note of $0.10" in correction.inner_text()
    [email] = mail.outbox
    assert email.to == ["carol@bravo.example"] and "$0.10" in email.body
