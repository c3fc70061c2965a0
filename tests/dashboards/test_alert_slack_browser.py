"""The alerts page's Slack card in headless Chromium (issue 16): a bad URL's error inline,
a good one saved and shown masked, "Send a test message" reaching the test receiver; a
screenshot in var/screenshots/alerts-slack.png."""

import pytest

from tests.conftest import ROOT
from tests.factories import make_user
from tests.usage.webhook_receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"


def test_slack_card_set_test_and_screenshot(live_server, page, pro_account):
    slack = Receiver().start()  # test settings allow the receiver on 127.0.0.1
    try:
        make_user(pro_account, "ada", email="ada@acme.example")
        page.goto(f"{live_server.url}/accounts/login/?next=/dashboard/alerts/")
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("pw-ada-123")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/dashboard/alerts/")
        card = page.get_by_test_id("slack")
        card.get_by_label("Slack incoming-webhook URL").fill("hooks.slack.com/services/x")
        card.get_by_role("button", name="Save URL").click()
        page.get_by_text("Slack webhook URL: enter a full URL").wait_for()
        card = page.get_by_test_id("slack")
        url = f"{slack.url}/services/T000/B000/XXXXXXXXabcd"
        card.get_by_label("Slack incoming-webhook URL").fill(url)
        card.get_by_role("button", name="Save URL").click()
        page.get_by_test_id("slack-test").wait_for()
        status = page.get_by_test_id("slack-status").inner_text()
        assert status == "Posting to http://127.0.0.1/…abcd"
        page.get_by_test_id("slack-test").click()
        result = page.get_by_test_id("slack-test-result")
        result.wait_for()
        assert result.inner_text() == "Test message sent: the receiver answered 200."
        assert [r.path for r in slack.received] == ["/services/T000/B000/XXXXXXXXabcd"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.get_by_test_id("slack").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "alerts-slack.png"), full_page=True)
    finally:
        slack.stop()
