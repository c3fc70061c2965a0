"""The revenue page in Chromium: Chart.js (vendored) draws the same numbers as the table."""

import pytest
from django.contrib.auth import get_user_model

from tests.revenue.test_acceptance import seeded  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_chart_matches_table(live_server, page, seeded, tmp_path):  # noqa: F811
    get_user_model().objects.create_superuser("finance", "f@x.test", "pw-finance-1")
    page.goto(f"{live_server.url}/admin/revenue/")
    assert "/admin/login/" in page.url
    page.get_by_label("Username").fill("finance")
    page.get_by_label("Password").fill("pw-finance-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/admin/revenue/")
    assert page.evaluate("Chart.version") == "4.6.1"
    chart = page.evaluate(
        """() => { const c = Chart.getChart('chart-usd');
                   return {labels: c.data.labels,
                           billed: c.data.datasets[0].data,
                           deferred: c.data.datasets[3].data}; }"""
    )
    rows = page.locator("table.revenue-waterfall[data-currency=usd] tbody tr")
    months = [rows.nth(i).get_attribute("data-month") for i in range(rows.count())]
    assert chart["labels"] == months == ["2026-01", "2026-02", "2026-03"]
    billed = [
        int(rows.nth(i).locator("td[data-column=billed]").get_attribute("data-minor"))
        for i in range(rows.count())
    ]
    assert [round(v * 100) for v in chart["billed"]] == billed
    # the CSV link keeps the filters
    page.select_option("#revenue-account", label=page.locator("#revenue-account option").nth(1)
                       .inner_text())  # fmt: skip
    page.get_by_role("button", name="Show").click()
    assert "account=" in page.locator("#revenue-csv").get_attribute("href")
    page.screenshot(path=str(tmp_path / "revenue.png"), full_page=True)
