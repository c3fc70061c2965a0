"""A budget end to end, in Chromium (issue 16, acceptance 5): a customer sets a budget of
10,000 API calls with a hard cap and warn levels 50/80/100 on the dashboard and sees its
card; 8,000 calls are ingested, the alert sweep runs, the 80% e-mail is in the outbox and
the card reads 80% with the 50% and 80% levels marked.

Time is pinned: the subscription lives on a Stripe test clock (period Mar 14 10:30 -
Apr 14 10:30 UTC) and Django's clock is travelled to Mar 20 (ticking, for the live
server's requests)."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail

from billing.services.accounts import account_create
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.browser.test_dashboard_browser import _log_in
from tests.conftest import ROOT
from tests.factories import ingest, make_user
from usage.models import Budget
from usage.services.alerts import alerts_evaluate_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"
STARTED = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


@pytest.fixture
def initech(stripe_client, demo_catalog):
    """Initech on Starter (0.1¢ a call), its period Mar 14 10:30 - Apr 14 10:30 UTC."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(STARTED.timestamp())}
    )
    account = account_create(name="Initech", billing_email="billing@initech.example")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    assert not stripe_sync_everything().errors
    return account


def _levels(card) -> list[tuple[str, str]]:
    return [
        (li.get_attribute("data-level"), li.get_attribute("data-reached"))
        for li in card.get_by_test_id("budget-level").all()
    ]


def test_customer_sets_a_capped_budget_and_gets_the_80_percent_email(
    live_server, page, browser, initech
):
    make_user(initech, "olga", email="olga@initech.example")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with time_machine.travel(NOW, tick=True):
        _log_in(page, live_server, "olga")
        # The section loads after the page; its form is folded under "Set a budget".
        page.get_by_test_id("budgets-empty").wait_for()
        page.get_by_test_id("budget-form-toggle").click()
        form = page.get_by_test_id("budget-form")
        assert (
            "usage already sent is still billed"
            in form.get_by_test_id("hard-cap-explained").inner_text()
        )
        form.get_by_label("Budget for").select_option(label="API calls (units)")
        form.get_by_label("Limit", exact=True).fill("10000")
        form.get_by_label("Warn at (% of the limit)").fill("50, 80, 100")
        form.get_by_label("Hard cap: stop my usage at the limit").check()
        form.get_by_role("button", name="Save budget").click()

        card = page.locator('[data-testid=budget-card][data-budget="api_calls"]')
        card.wait_for()
        # Saved: the form folds away under the card.
        assert not page.locator("details.budget-form-box").evaluate("(d) => d.open")
        assert " ".join(card.get_by_test_id("budget-used").inner_text().split()) == (
            "0 of 10,000 calls used 0%"
        )
        assert card.get_by_test_id("budget-mode").inner_text() == "Hard cap"
        assert card.get_by_test_id("budget-resets").inner_text() == "Resets Apr 14, 10:30 UTC"
        assert _levels(card) == [("50", "false"), ("80", "false"), ("100", "false")]
        budget = Budget.objects.get(account=initech)
        assert (budget.limit, budget.warn_levels, budget.hard_cap) == (10_000, [50, 80, 100], True)
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "budgets-set-1280.png"), full_page=True)

        # 8,000 calls this period: 8,000 x 100 >= 10,000 x 80, so 50% and 80% are
        # reached, 100% (10,000) is not. Then the beat's sweep runs.
        ingest(initech.djstripe_customers.get().id, "api_calls", [1] * 8_000, "initech")
        alerts_evaluate_all()
        subjects = sorted(message.subject for message in mail.outbox)
        [eighty] = [m for m in mail.outbox if "80% reached" in m.subject]
        assert eighty.to == ["olga@initech.example"]
        assert "API calls" in eighty.subject and "8,000 of 10,000 calls (80%)" in eighty.subject
        assert len(subjects) == 2 and "50% reached" in subjects[0], subjects  # 50 and 80 once
        alerts_evaluate_all()
        assert len(mail.outbox) == 2  # the sweep again sends nothing more

        page.reload()
        card.wait_for()
        assert " ".join(card.get_by_test_id("budget-used").inner_text().split()) == (
            "8,000 of 10,000 calls used 80%"
        )
        assert _levels(card) == [("50", "true"), ("80", "true"), ("100", "false")]
        assert card.get_by_test_id("budget-left").inner_text() == "2,000 calls left"
        bar = card.get_by_role("progressbar")
        assert bar.get_attribute("aria-valuenow") == "80"
        assert "is told to stop your usage" in card.get_by_test_id("budget-at-cap").inner_text()
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "budgets-80-1280.png"), full_page=True)
        card.screenshot(path=str(SCREENSHOTS / "budgets-card-80.png"))

        # Over the cap: 10,500 of 10,000 is 105%; the card says the API is stopping usage.
        ingest(initech.djstripe_customers.get().id, "api_calls", [1] * 2_500, "initech-more")
        alerts_evaluate_all()
        assert sum("100% reached" in m.subject for m in mail.outbox) == 1
        page.reload()
        card.wait_for()
        assert card.get_by_test_id("budget-percent").inner_text() == "105%"
        assert card.get_by_test_id("budget-left").inner_text() == "500 calls over the limit"
        assert card.get_by_test_id("budget-at-cap").inner_text().startswith("Cap reached:")
        card.screenshot(path=str(SCREENSHOTS / "budgets-card-cap.png"))

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        small = phone.new_page()
        _log_in(small, live_server, "olga")
        small_card = small.locator('[data-testid=budget-card][data-budget="api_calls"]')
        small_card.wait_for()
        small.screenshot(path=str(SCREENSHOTS / "budgets-cap-390.png"), full_page=True)
        small_card.screenshot(path=str(SCREENSHOTS / "budgets-card-cap-390.png"))
        phone.close()
