"""Acceptance 2 and staff "view as customer" (issue 14) in headless Chromium.

Screenshots of every customer page (dashboard, invoices, alerts, login) at 1280 and
390 px for an account with usage, and of the reconciliation admin at 1280 px, under
``var/screenshots/``; a staff user clicks through the three customer pages of one
account and stays on it; a staff user without ``billing.view_account`` gets the 403.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from tests.conftest import ROOT
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = ROOT / "var" / "screenshots"
WIDTHS = (1280, 390)


def _staff(username: str, *codenames: str):
    user = get_user_model().objects.create_user(
        username, password=f"pw-{username}-123", is_staff=True
    )
    for codename in codenames:
        app, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=name)
        )
    return user


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _fits_the_viewport(page) -> bool:
    """Nothing on the page is wider than the window (no sideways scrolling)."""
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_staff_view_as_keeps_the_account_across_the_three_pages(live_server, page, pro_account):
    # Viewing, plus managing alert rules: the alerts page shows them its form.
    _staff("support", "billing.view_account", "usage.add_alertrule", "usage.delete_alertrule")
    _log_in(page, live_server, "support")
    page.get_by_label("View as customer").select_option(label="Acme Analytics")
    page.wait_for_url(f"**/dashboard/?account={pro_account.pk}")
    banner = page.get_by_test_id("staff-banner")
    assert banner.inner_text().startswith("Viewing Acme Analytics as staff")
    assert page.get_by_role("heading", level=1).inner_text() == "Acme Analytics"
    assert page.get_by_test_id("usage-api_calls").inner_text() == "10,500"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    page.wait_for_url(f"**/dashboard/invoices/?account={pro_account.pk}")
    assert "Acme Analytics" in page.get_by_test_id("staff-banner").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Invoices"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    page.wait_for_url(f"**/dashboard/alerts/?account={pro_account.pk}")
    assert "Acme Analytics" in page.get_by_test_id("staff-banner").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Alerts"
    form = page.get_by_test_id("alert-form")
    assert f"account={pro_account.pk}" in form.get_attribute("hx-post")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    page.wait_for_url(f"**/dashboard/?account={pro_account.pk}")
    assert page.get_by_role("heading", level=1).inner_text() == "Acme Analytics"
    _shot(page, "staff-view-as-1280")

    page.get_by_test_id("exit-view-as").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")
    assert page.get_by_test_id("staff-banner").count() == 0


def test_staff_without_view_permission_get_the_403_page(live_server, page, pro_account):
    _staff("plain")
    _log_in(page, live_server, "plain")
    assert page.get_by_test_id("account-picker").count() == 0
    response = page.goto(f"{live_server.url}/dashboard/?account={pro_account.pk}")
    assert response.status == 403
    assert "billing.view_account" in page.get_by_test_id("forbidden").inner_text()


def test_screenshots_of_every_customer_page_and_the_reconciliation_admin(
    live_server, browser, pro_account
):
    from billing.services.stripe_sync import stripe_sync_everything
    from usage.services.reconciliation import usage_reconcile
    from usage.services.reporting import usage_report_pass

    make_user(pro_account, "ada", email="ada@acme.example")
    usage_report_pass(flush=True)
    usage_reconcile(include_open=True)
    stripe_sync_everything()  # the mirror holds Acme's first invoice
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        _shot(page, f"login-{width}")
        assert _fits_the_viewport(page), f"login at {width}px"
        _log_in(page, live_server, "ada")
        page.wait_for_function(
            "() => { const c = document.getElementById('chart-api_calls');"
            " return c && window.Chart && Chart.getChart(c); }",
            timeout=10_000,
        )
        _shot(page, f"dashboard-{width}")
        assert _fits_the_viewport(page), f"dashboard at {width}px"
        for name in ("invoices", "alerts"):
            page.goto(f"{live_server.url}/dashboard/{name}/")
            _shot(page, f"{name}-{width}")
            assert _fits_the_viewport(page), f"{name} at {width}px"
        context.close()

    get_user_model().objects.create_superuser("boss", "boss@x.test", "pw-boss-123")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill("pw-boss-123")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/usage/reconciliationresult/")
    table = page.locator("#result_list")
    assert table.locator("tbody tr").count() >= 2  # API calls and seats
    # Every column, Ledger to Checked, is inside the 1280 px window.
    right_edges = page.evaluate(
        "() => [...document.querySelectorAll('#result_list thead th')]"
        ".map((th) => [th.innerText.trim(), th.getBoundingClientRect().right])"
    )
    headers = [h.capitalize() for h, _ in right_edges]  # the admin shows them in capitals
    for header in ("Ledger", "Stripe", "Difference", "Status"):
        assert header in headers
    assert all(right <= 1280 for _, right in right_edges), right_edges
    # ... and none is hidden in the list's own horizontal scroll area.
    assert page.evaluate(
        "() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth <= r.clientWidth; }"
    ), "the reconciliation list scrolls sideways at 1280 px"
    assert "cus_" not in table.inner_text()
    assert "Acme Analytics" in table.inner_text()
    _shot(page, "admin-reconciliation-1280")
    context.close()
