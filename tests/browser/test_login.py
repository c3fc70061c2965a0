import pytest
from django.contrib.auth import get_user_model

from billing.models import Account, Membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_then_dashboard(live_server, page):
    user = get_user_model().objects.create_user("ada", password="correct horse battery")
    account = Account.objects.create(name="Analytical Engines Ltd", billing_email="a@example.com")
    Membership.objects.create(account=account, user=user, role=Membership.Role.OWNER)

    page.goto(f"{live_server.url}/dashboard/")
    # Anonymous visitors are sent to the login page, which keeps where they wanted to go.
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Your username and password")

    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")
    assert page.get_by_role("heading", level=1).inner_text() == "Analytical Engines Ltd"
    # htmx and Chart.js come from our own static files, not a CDN.
    assert page.evaluate("typeof htmx.version") == "string"
    assert page.evaluate("Chart.version") == "4.6.1"
