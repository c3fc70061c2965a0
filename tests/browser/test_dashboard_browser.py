"""The customer dashboard in headless Chromium against a live server and the emulator."""

import pytest
import requests
from django.core import mail

from billing.models import Membership
from tests.conftest import ROOT
from tests.factories import make_user
from usage.services.keys import ingest_key_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")


def _chart_has_data(page, event_name: str) -> bool:
    return page.evaluate(
        """(name) => {
            const canvas = document.getElementById('chart-' + name);
            const chart = canvas && Chart.getChart(canvas);
            return !!chart && chart.data.datasets[0].data.some((v) => v > 0)
                && canvas.width > 0 && canvas.height > 0;
        }""",
        event_name,
    )


def test_dashboard_lives_charts_and_updates_without_reload(live_server, page, browser, pro_account):
    make_user(pro_account, "ada", email="ada@acme.example")
    _log_in(page, live_server, "ada")
    usage = page.get_by_test_id("usage-api_calls")
    assert usage.inner_text() == "10,500"
    page.wait_for_function(
        "() => { const c = document.getElementById('chart-api_calls');"
        " return c && Number(c.dataset.total) === 10500; }",
        timeout=10_000,
    )
    assert _chart_has_data(page, "api_calls")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-desktop.png"), full_page=True)

    # 250 more calls through the ingestion API: the numbers move without a reload.
    _, key = ingest_key_create(name="browser test")
    customer = pro_account.djstripe_customers.get().id
    events = [
        {"event_name": "api_calls", "customer": customer, "identifier": f"live-{i}"}
        for i in range(250)
    ]
    response = requests.post(
        f"{live_server.url}/api/v1/usage/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 202 and response.json()["accepted"] == 250
    page.wait_for_function(
        "() => document.querySelector('[data-testid=usage-api_calls]').innerText === '10,750'",
        timeout=8_000,  # polling every 5 s
    )
    page.wait_for_function(
        "() => Number(document.getElementById('chart-api_calls').dataset.total) === 10750",
        timeout=8_000,
    )
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    _log_in(small, live_server, "ada")
    small.wait_for_function(
        "() => Number(document.getElementById('chart-api_calls').dataset.total) > 0", timeout=10_000
    )
    # Nothing spills sideways at phone width.
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    small.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"), full_page=True)
    phone.close()


def test_alert_rule_from_the_form_fires_once(live_server, page, pro_account):
    make_user(pro_account, "olga", email="olga@acme.example")
    _log_in(page, live_server, "olga")
    page.get_by_role("link", name="Alerts").click()
    # An invalid rule shows its error next to the field, without a page load.
    page.get_by_label("Alert me when").select_option("usage_share")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_text("Choose a meter.").wait_for()
    # Spend so far: base 9,900¢ + calls (500 × 0.2¢ = 100¢) + 3 seats × 1,000¢ = 13,000¢,
    # so a $120.00 spend rule is crossed already.
    page.get_by_label("Alert me when").select_option("spend")
    page.get_by_label("Amount (USD)").fill("120.00")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_text("Spend this period reaches $120.00").wait_for()
    sent = page.get_by_test_id("sent-alerts")
    sent.get_by_text("Spend reached $130.00").wait_for()
    spend_mails = [m for m in mail.outbox if "Spend reached" in m.subject]
    assert len(spend_mails) == 1
    assert spend_mails[0].to == ["olga@acme.example"]
    # Evaluating again (a reload, another rule added) sends nothing more for it.
    page.reload()
    page.get_by_label("Alert me when").select_option("spend")
    page.get_by_label("Amount (USD)").fill("5000")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_text("Spend this period reaches $5,000.00").wait_for()
    assert len([m for m in mail.outbox if "Spend reached" in m.subject]) == 1


def test_portal_button_reaches_the_emulator_portal(live_server, page, pro_account, emulator_url):
    make_user(pro_account, "bill", Membership.Role.BILLING)
    _log_in(page, live_server, "bill")
    page.get_by_test_id("portal-button").click()
    page.wait_for_url(f"{emulator_url}/**")
    customer = pro_account.djstripe_customers.get().id
    assert customer in page.content()
