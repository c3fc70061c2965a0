"""Acceptance 3: data seeded through the emulator; the admin page, the CSV and
``revenue_report`` agree for every month and currency.

Three accounts subscribe on 15 Jan 2026 (a test clock) to Pro ($99 base, 10,000 API
calls included then 0.2¢ a call, $10 a seat), Starter (0.1¢ a call) and Growth (volume
tiers per GB). Usage is ingested into Meterdesk's ledger (``usage_events_ingest``, so
the rollups give the daily weights) and the same totals are sent to the emulator as
meter events; the clock moves past 15 Feb (the emulator closes the periods and
invoices), more usage comes in for the open period, and dj-stripe is synced.
"""

import csv
import io
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from djstripe.models import Invoice

from billing.models import Account
from billing.money import currency_exponent
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from revenue.selectors import revenue_report
from revenue.waterfall import COLUMN_LABELS, COLUMNS
from usage.services.ingest import usage_events_ingest

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

JAN_15 = datetime(2026, 1, 15, tzinfo=UTC)
DAY = timedelta(days=1)
PAGE = "/admin/revenue/"
CSV = "/admin/revenue/waterfall.csv"


def _use(client, *, account, customer, meter, per_day: dict[datetime, int], now, seq):
    """Ingest usage into the ledger (count meters: one event per call; others: one event
    with the value) and send the same daily totals to the emulator as meter events."""
    events = []
    for day, amount in per_day.items():
        if meter == "api_calls":
            events += [
                {"event_name": meter, "customer": customer,
                 "timestamp": int((day + timedelta(seconds=10 * i)).timestamp()),
                 "identifier": f"{seq}-{customer}-{day:%m%d}-{i}"}
                for i in range(amount)
            ]  # fmt: skip
        else:
            events.append({"event_name": meter, "customer": customer, "value": amount,
                           "timestamp": int((day + timedelta(hours=3)).timestamp()),
                           "identifier": f"{seq}-{customer}-{day:%m%d}"})  # fmt: skip
    for i in range(0, len(events), 1000):
        result = usage_events_ingest(events=events[i : i + 1000], now=now)
        assert not result.rejected, result.rejected[:3]
    for day, amount in per_day.items():
        client.v1.billing.meter_events.create(
            {
                "event_name": meter,
                # Per meter too: Stripe refuses an identifier it has (Pro sends calls and
                # seats on 17 Jan; the kinder old emulator silently kept only the calls).
                "identifier": f"stripe-{seq}-{meter}-{customer}-{day:%m%d}",
                "timestamp": int((day + timedelta(hours=3)).timestamp()),
                "payload": {"stripe_customer_id": customer, "value": str(amount)},
            }
        )


@pytest.fixture
def seeded(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(JAN_15.timestamp())}
    )
    accounts = {}
    for key in ("pro", "starter", "growth"):
        account = Account.objects.create(name=f"{key.title()} Co", billing_email=f"{key}@x.test")
        subscription_create(account=account, plan=demo_catalog[key], test_clock=clock.id)
        accounts[key] = account
    cus = {k: a.djstripe_customers.get().id for k, a in accounts.items()}

    # First period (15 Jan .. 15 Feb): usage 3/4 in January, 1/4 in February for Starter.
    feb_10 = JAN_15 + 26 * DAY
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=feb_10)
    jan = {JAN_15 + i * DAY: 300 for i in range(10)}  # 15..24 Jan: 3,000 calls
    feb = {datetime(2026, 2, 1, tzinfo=UTC) + i * DAY: 100 for i in range(5)}  # 500 calls
    feb |= {datetime(2026, 2, 6, tzinfo=UTC) + i * DAY: 125 for i in range(4)}  # 500 calls
    _use(stripe_client, account=accounts["starter"], customer=cus["starter"], meter="api_calls",
         per_day=jan | feb, now=feb_10, seq=1)  # fmt: skip
    _use(stripe_client, account=accounts["pro"], customer=cus["pro"], meter="api_calls",
         per_day={JAN_15 + i * DAY: 1200 for i in range(10)}, now=feb_10, seq=1)  # fmt: skip
    _use(stripe_client, account=accounts["pro"], customer=cus["pro"], meter="seats",
         per_day={JAN_15 + 2 * DAY: 2, JAN_15 + 20 * DAY: 3}, now=feb_10, seq=1)  # fmt: skip
    _use(stripe_client, account=accounts["growth"], customer=cus["growth"],
         meter="data_transfer_gb", per_day={JAN_15 + i * DAY: 15 for i in range(0, 20, 2)},
         now=feb_10, seq=1)  # fmt: skip
    # The period closes on 15 Feb: renewal invoices (usage in arrears, fees in advance).
    mar_2 = datetime(2026, 3, 2, tzinfo=UTC)
    test_clock_advance(
        client=stripe_client, clock_id=clock.id, to=datetime(2026, 2, 16, tzinfo=UTC)
    )
    # Open period (15 Feb .. 15 Mar): usage so far is accrued, not billed.
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=mar_2)
    _use(stripe_client, account=accounts["starter"], customer=cus["starter"], meter="api_calls",
         per_day={datetime(2026, 2, 20, tzinfo=UTC): 600,
                  datetime(2026, 3, 1, tzinfo=UTC): 200}, now=mar_2, seq=2)  # fmt: skip
    _use(stripe_client, account=accounts["growth"], customer=cus["growth"],
         meter="data_transfer_gb", per_day={datetime(2026, 2, 25, tzinfo=UTC): 40},
         now=mar_2, seq=2)  # fmt: skip
    report = stripe_sync_everything()
    assert not report.errors, report.errors
    assert report.counts["invoices"] == 6
    return accounts


class _WaterfallTables(HTMLParser):
    """{currency: {month: {column: minor}}} from the page's data attributes."""

    def __init__(self):
        super().__init__()
        self.data = defaultdict(dict)
        self.currency = self.month = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "revenue-waterfall" in (a.get("class") or ""):
            self.currency = a["data-currency"]
        elif tag == "tr" and "data-month" in a:
            self.month = a["data-month"]
            self.data[self.currency][self.month] = {}
        elif tag == "td" and "data-minor" in a:
            self.data[self.currency][self.month][a["data-column"]] = int(a["data-minor"])


def _page(client, query="") -> dict:
    response = client.get(PAGE + query)
    assert response.status_code == 200
    parser = _WaterfallTables()
    parser.feed(response.content.decode())
    return {c: dict(months) for c, months in parser.data.items()}


def _csv(client, query="") -> dict:
    response = client.get(CSV + query)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    data = defaultdict(dict)
    for row in csv.DictReader(io.StringIO(response.content.decode())):
        data[row["currency"]][row["month"]] = {c: int(row[f"{c}_minor_units"]) for c in COLUMNS}
    return dict(data)


def _minor(text: str, currency: str) -> int:
    negative = text.startswith("-")
    number = re.sub(r"[^0-9.]", "", text)
    value = int(Decimal(number).scaleb(currency_exponent(currency)))
    return -value if negative else value


def _command(month: str, **options) -> dict:
    """{currency: {column: minor}} from the command's "Waterfall" block of each currency."""
    out = io.StringIO()
    call_command("revenue_report", month=month, stdout=out, **options)
    text = out.getvalue()
    assert "NOT BALANCED" not in text
    figures = {}
    for section in re.split(r"\n(?=[A-Z]{3} \d{4}-\d{2}\n)", text)[1:]:
        currency = section[:3].lower()
        assert section.splitlines()[0] == f"{currency.upper()} {month}"
        assert ": balanced" in section
        block = section.split("\nWaterfall\n", 1)[1]
        values = {}
        for column in COLUMNS:
            match = re.search(rf"^  {re.escape(COLUMN_LABELS[column])}\s+(\S+)$", block, re.M)
            values[column] = _minor(match.group(1), currency)
        figures[currency] = values
    return figures


def _assert_all_agree(client, query="", **options):
    page, csv_data = _page(client, query), _csv(client, query)
    assert page == csv_data
    assert page, "nothing to compare"
    for currency, months in page.items():
        for month, figures in months.items():
            assert _command(month, **options)[currency] == figures, (currency, month)
    return page


def test_admin_page_csv_and_command_agree_for_every_month(seeded):
    staff = get_user_model().objects.create_superuser("finance", "f@x.test", "pw")
    client = Client()
    client.force_login(staff)

    page = _assert_all_agree(client)
    usd = page["usd"]
    assert list(usd) == ["2026-01", "2026-02", "2026-03"]

    # What the emulator billed (non-void, finalized) is what the waterfall billed.
    invoices = [i.stripe_data for i in Invoice.objects.all()]
    assert sum(i["total"] for i in invoices if i["status"] in ("paid", "open")) == sum(
        m["billed"] for m in usd.values()
    )
    # 15 Jan: Pro's $99 for 15 Jan .. 15 Feb in advance. January earns
    # floor(9,900 × 17 / 31) = floor(5,429.03) = 5,429.
    # Starter's usage (4,000 calls × 0.1¢ = 400¢, invoiced 15 Feb) was 3,000 calls in
    # January: 300 earned in January (unbilled until February), 100 in February.
    pro, starter = seeded["pro"], seeded["starter"]
    pro_page = _assert_all_agree(client, f"?account={pro.pk}", account=pro.pk)
    starter_page = _assert_all_agree(client, f"?account={starter.pk}&currency=usd",
                                     account=starter.pk, currency="usd")  # fmt: skip
    assert pro_page["usd"]["2026-01"]["billed"] == 9900
    jan_pro = pro_page["usd"]["2026-01"]
    # Pro's January: the base fee (5,429) plus its January usage (2,000 calls over the
    # allowance = 400¢, all consumed 15..24 Jan, invoiced 15 Feb) and seats (3 × $10 =
    # 3,000, a level: ratable, 17 of 31 days: floor(3,000 × 17 / 31) = floor(1,645.16)
    # = 1,645).
    assert jan_pro["recognized"] == 5429 + 400 + 1645
    assert jan_pro["deferred_end"] == 9900 - 5429
    assert jan_pro["unbilled_end"] == 400 + 1645
    jan_starter = starter_page["usd"]["2026-01"]
    assert (jan_starter["billed"], jan_starter["recognized"], jan_starter["unbilled_end"]) == (
        0, 300, 300,
    )  # fmt: skip
    feb_starter = starter_page["usd"]["2026-02"]
    # February: the 400¢ invoice; 100 earned in February from it; open-period usage
    # (600 calls on 20 Feb = 60¢, 200 on 1 Mar = 20¢) accrued in the month it was used.
    assert feb_starter["billed"] == 400
    assert feb_starter["recognized"] == 100
    assert feb_starter["accrued"] == 60
    assert starter_page["usd"]["2026-03"]["accrued"] == 20
    assert feb_starter["deferred_end"] == 0 and feb_starter["unbilled_end"] == 60

    # Per-account pages add up to the all-accounts page, month by month.
    growth_page = _page(client, f"?account={seeded['growth'].pk}")
    for month, figures in usd.items():
        for column in COLUMNS:
            parts = [p["usd"].get(month, {}).get(column) for p in (pro_page, starter_page,
                     growth_page)]  # fmt: skip
            assert figures[column] == sum(p for p in parts if p is not None), (month, column)


def test_void_and_draft_invoices_are_left_out(seeded):
    before = revenue_report()
    starter_invoices = Invoice.objects.filter(customer__subscriber=seeded["starter"])
    renewal = next(i for i in starter_invoices if i.stripe_data["total"] == 400)
    renewal.stripe_data = {**renewal.stripe_data, "status": "void"}
    renewal.save()
    after = revenue_report()
    assert after.figures_for("usd", "2026-02").billed == (
        before.figures_for("usd", "2026-02").billed - 400
    )
    # The open period's usage is still accrued; January loses the unbilled 300.
    assert after.figures_for("usd", "2026-01").recognized == (
        before.figures_for("usd", "2026-01").recognized - 300
    )
    renewal.stripe_data = {**renewal.stripe_data, "status": "draft"}
    renewal.save()
    assert revenue_report().figures_for("usd", "2026-02").billed == (
        after.figures_for("usd", "2026-02").billed
    )


def test_command_exits_non_zero_when_a_journal_does_not_balance(seeded, monkeypatch):
    from revenue import export

    real = export.journal_for

    def broken(fig, *, previous=None):
        journal = real(fig, previous=previous)
        journal.problems.append("revenue: journal 1 != waterfall 2")
        return journal

    monkeypatch.setattr(export, "journal_for", broken)
    with pytest.raises(CommandError, match="does not balance"):
        call_command("revenue_report", month="2026-02", stdout=io.StringIO())


def test_staff_only_and_bad_month():
    anonymous = Client().get(PAGE)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("revenue_report", month="2026-13", stdout=io.StringIO())
