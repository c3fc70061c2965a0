"""Every number explained, in Chromium: an invoice's per-tier breakdown equals Stripe's
invoice line (the emulator's) for graduated-with-flat-fees, volume-with-flat-fees and
package plans of the demo catalog, and the dashboard's line breakdown and estimate."""

from datetime import UTC, datetime, timedelta

import pytest

from billing.services.accounts import account_create, account_ensure_stripe_customer
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.browser.test_dashboard_browser import SCREENSHOTS, _log_in
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

START = datetime(2026, 9, 1, tzinfo=UTC)

# (plan, meter, September's usage, expected breakdown rows, line amount), by hand from
# billing/catalog/demo.toml. Rows: (tier or pack text, units, unit price, flat fee, amount).
CASES = [
    # Scale, graduated with flat fees, 12,345 transactions:
    #   1–1,000:       1,000 × 5¢ = 5,000¢ + 1,000¢ flat =  6,000¢
    #   1,001–10,000:  9,000 × 3¢ = 27,000¢ +  500¢ flat = 27,500¢
    #   10,001 and up: 2,345 × 1¢ = 2,345¢, no flat fee   =  2,345¢
    #   6,000 + 27,500 + 2,345 = 35,845¢ = $358.45
    (
        "scale",
        "transactions",
        12_345,
        [
            ("1 – 1,000", "1,000", "$0.05", "$10.00", "$60.00"),
            ("1,001 – 10,000", "9,000", "$0.03", "$5.00", "$275.00"),
            ("10,001 and up", "2,345", "$0.01", "—", "$23.45"),
        ],
        "$358.45",
    ),
    # Growth, volume with flat fees, 250 GB: the total falls in tier 101–1,000, so every
    # GB at 8¢ plus that tier's 1,000¢: 250 × 8¢ + 1,000¢ = 3,000¢ = $30.00.
    (
        "growth",
        "data_transfer_gb",
        250,
        [("101 – 1,000 (all units at this tier)", "250", "$0.08", "$10.00", "$30.00")],
        "$30.00",
    ),
    # Bulk, package: 7,001 calls in packs of 1,000 rounded up = 8 packs × 50¢ = $4.00.
    (
        "bulk",
        "api_calls",
        7_001,
        [("7,001 calls in packs of 1,000, rounded up", "8 packs", "$0.50", "—", "$4.00")],
        "$4.00",
    ),
]


def _cells(row) -> tuple[str, ...]:
    return tuple(c.strip() for c in row.locator("th, td").all_inner_texts())


def test_invoice_breakdowns_equal_stripes_invoice_lines(
    live_server, page, browser, stripe_client, demo_catalog
):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(START.timestamp())}
    )
    accounts = {}
    for plan, meter, quantity, _, _ in CASES:
        account = account_create(name=f"{plan.title()} Co", billing_email=f"ap@{plan}.example")
        customer = account_ensure_stripe_customer(
            account=account, payment_method="pm_card_visa", test_clock=clock.id
        )
        subscription_create(account=account, plan=demo_catalog[plan])
        accounts[plan] = (account, customer.id, meter, quantity)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=START + timedelta(days=5))
    for plan, (_, customer_id, meter, quantity) in accounts.items():
        stripe_client.v1.billing.meter_events.create(
            {
                "event_name": meter,
                "identifier": f"{plan}-sept",
                "timestamp": int((START + timedelta(days=3)).timestamp()),
                "payload": {"stripe_customer_id": customer_id, "value": str(quantity)},
            }
        )
    # Past the period end (Oct 1) and the hour the renewal stays a draft.
    test_clock_advance(
        client=stripe_client, clock_id=clock.id, to=datetime(2026, 10, 1, 1, 1, tzinfo=UTC)
    )
    stripe_sync_everything(client=stripe_client)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for plan, _meter, quantity, rows, amount in CASES:
        account, customer_id, _, _ = accounts[plan]
        # Stripe's own invoice line (the emulator stands in for it).
        stripe_lines = [
            line
            for invoice in stripe_client.v1.invoices.list({"customer": customer_id}).data
            for line in invoice.lines.data
            if line.quantity == quantity
        ]
        assert [line.amount for line in stripe_lines] == [
            int(amount.strip("$").replace(".", "").replace(",", ""))
        ]
        make_user(account, f"{plan}-user")
        page.context.clear_cookies()
        _log_in(page, live_server, f"{plan}-user")
        page.goto(f"{live_server.url}/dashboard/invoices/")
        # The newest invoice is the renewal that closed September.
        renewal = page.locator("article.invoice").first
        assert renewal.get_by_test_id("invoice-period").inner_text() == "Sep 1 – Oct 1, 2026"
        assert renewal.get_by_test_id("invoice-total").inner_text() == amount
        metered = renewal.get_by_test_id("line-metered")
        assert metered.count() == 1
        assert metered.get_by_test_id("line-period").inner_text() == "Sep 1 – Oct 1, 2026"
        assert metered.get_by_test_id("line-amount").inner_text() == amount
        details = renewal.locator("details.breakdown")
        details.locator("summary").click()
        got = [_cells(r) for r in details.locator("tbody tr[data-testid$='-row']").all()]
        assert got == rows
        assert details.locator("[data-col=total]").inner_text() == amount
        if plan == "scale":
            page.screenshot(path=str(SCREENSHOTS / "invoices-1280.png"), full_page=True)
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            small = phone.new_page()
            _log_in(small, live_server, "scale-user")
            small.goto(f"{live_server.url}/dashboard/invoices/")
            small.locator("details.breakdown summary").first.click()
            assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            small.screenshot(path=str(SCREENSHOTS / "invoices-390.png"), full_page=True)
            phone.close()


def test_dashboard_line_breakdown_and_estimate(live_server, page, pro_account):
    """Pro, 10,500 calls and 3 seats this period: calls 10,000 at 0¢ (included) + 500 ×
    0.2¢ = 100¢; seats 3 × 1,000¢ = 3,000¢ (last value); base 9,900¢."""
    make_user(pro_account, "eve")
    _log_in(page, live_server, "eve")
    calls = page.get_by_test_id("breakdown-api_calls")
    calls.locator("summary").click()
    got = [_cells(r) for r in calls.locator("tbody tr[data-testid$='-row']").all()]
    assert got == [
        ("1 – 10,000 (included)", "10,000", "$0.00", "—", "$0.00"),
        ("10,001 and up", "500", "$0.002", "—", "$1.00"),
    ]
    assert calls.locator("[data-col=total]").inner_text() == "$1.00"
    seats = page.get_by_test_id("breakdown-seats")
    seats.locator("summary").click()
    assert [_cells(r) for r in seats.locator("tbody tr[data-testid$='-row']").all()] == [
        ("Every seat", "3", "$10.00", "—", "$30.00")
    ]
    # The estimate lists the base fee and each metered line and adds up to its total.
    estimate = page.get_by_test_id("estimate")
    assert (
        estimate.get_by_test_id(
            next(
                t
                for t in estimate.locator("tr").evaluate_all("rs => rs.map(r => r.dataset.testid)")
                if t and t.startswith("estimate-base-")
            )
        )
        .inner_text()
        .endswith("$99.00")
    )
    amounts = [
        int(t.split("$")[-1].replace(",", "").replace(".", ""))
        for t in estimate.locator("tbody tr").all_inner_texts()
    ]
    total = estimate.get_by_test_id("estimate-total").inner_text()
    assert len(amounts) == 3 and sum(amounts) == int(
        total.strip("$").replace(",", "").replace(".", "")
    )
    # The open breakdown survives the 5 s htmx refresh.
    page.wait_for_timeout(6_000)
    assert calls.evaluate("el => el.open")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-breakdown-1280.png"), full_page=True)
