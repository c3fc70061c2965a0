"""The report is as of its ``now``: revenue_report passes the day to the waterfall, so
a licensed fee for the period after today is deferred, not recognized in future months
(issue 14, item 10), and the CSV's header names its unit."""

from datetime import UTC, date, datetime

from revenue import selectors
from revenue.export import CSV_HEADER
from revenue.schedule import RevenueLine


def test_revenue_report_recognizes_nothing_after_its_day(monkeypatch):
    fee = RevenueLine(
        invoice_id="in_1", line_id="il_1", currency="usd", amount=9900,
        period_start=datetime(2026, 1, 15, tzinfo=UTC),
        period_end=datetime(2026, 2, 15, tzinfo=UTC), billed_on=date(2026, 1, 15),
    )  # fmt: skip
    monkeypatch.setattr(selectors, "revenue_lines", lambda **kw: ([fee], [], set()))
    monkeypatch.setattr(selectors, "open_period_accruals", lambda **kw: [])
    report = selectors.revenue_report(now=datetime(2026, 1, 20, 15, 0, tzinfo=UTC))
    # 15..20 Jan, 6 of 31 days: floor(9,900 × 6 / 31) = 1,916; no February row.
    assert [(f.month, f.recognized, f.deferred_end) for f in report.by_currency["usd"]] == [
        ("2026-01", 1916, 7984)
    ]


def test_csv_header_says_amounts_are_minor_units_of_the_currency():
    assert CSV_HEADER[:2] == ("currency", "month")
    assert all(column.endswith("_minor_units") for column in CSV_HEADER[2:])
