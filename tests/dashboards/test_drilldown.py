"""Invoice line -> days -> hours -> the raw events of one hour (issue 15).

A "Trio" plan (the demo catalog plus one plan with three metered prices) on a test clock
frozen at Sep 1 2026; usage ingested on Sep 5 through the ingestion service, reported to
the emulator by a flushing reporting pass, the clock advanced past the period end and the
hour the renewal stays a draft, then mirrored. The drill-down's every level must add up to
the level above and the top to Stripe's invoice line."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.urls import reverse

from billing.catalog.spec import load_catalog
from billing.mirror.customers import customer_id_for_account
from billing.mirror.invoices import account_invoices
from billing.models import Plan
from billing.services.accounts import account_create, account_ensure_stripe_customer
from billing.services.catalog import catalog_apply
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.conftest import ROOT
from tests.factories import make_user
from usage.models import ReconciliationResult
from usage.services.corrections import usage_events_void
from usage.services.ingest import usage_events_ingest
from usage.services.reconciliation import usage_reconcile
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db

START = datetime(2026, 9, 1, tzinfo=UTC)
NOW = datetime(2026, 9, 5, 12, tzinfo=UTC)  # usage is ingested and reported then
RENEWED = datetime(2026, 10, 1, 1, 1, tzinfo=UTC)  # past the end and the draft hour

TRIO = """
[plans.trio]
name = "Trio"
description = "Three metered prices."
interval = "month"
[[plans.trio.prices]]
lookup_key = "trio_base"
nickname = "Trio base fee"
unit_amount = 2000
[[plans.trio.prices]]
lookup_key = "trio_api_calls"
nickname = "API calls"
meter = "api_calls"
tiers_mode = "graduated"
tiers = [
  { up_to = 10000, unit_amount = 0 },
  { up_to = "inf", unit_amount_decimal = "0.2" },
]
[[plans.trio.prices]]
lookup_key = "trio_gb"
nickname = "Data transfer"
meter = "data_transfer_gb"
unit_amount = 5
[[plans.trio.prices]]
lookup_key = "trio_seats"
nickname = "Seats"
meter = "seats"
unit_amount = 1000
"""


@pytest.fixture
def trio_plan(stripe_emulator, tmp_path):
    path = tmp_path / "catalog.toml"
    path.write_text((ROOT / "billing" / "catalog" / "demo.toml").read_text() + TRIO)
    catalog_apply(catalog=load_catalog(path))
    return Plan.objects.get(key="trio")


def _events(customer: str, prefix: str, counts: dict[str, int]) -> list[dict]:
    """``counts[name]`` events of each meter, spread evenly over Sep 1 00:00 - Sep 5 11:00
    (107 hours); api_calls are counted, gigabytes valued 1..5, seats valued 1..9."""
    span = 107 * 3600
    events = []
    for name, n in counts.items():
        for i in range(n):
            event = {"event_name": name, "customer": customer, "identifier": f"{prefix}-{name}-{i}",
                     "timestamp": int(START.timestamp()) + (i * span) // n}  # fmt: skip
            if name == "data_transfer_gb":
                event["value"] = 1 + i % 5
            elif name == "seats":
                event["value"] = 1 + i % 9
            events.append(event)
    return events


def _period(stripe_client, plan, accounts: dict[str, dict[str, int]]):
    """Each ``name: counts`` an account on ``plan``, its usage ingested and reported on
    Sep 5, the period closed and its renewal finalized and mirrored."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(START.timestamp())}
    )
    made = {}
    for name in accounts:
        account = account_create(name=f"{name} Co", billing_email=f"ap@{name}.example")
        account_ensure_stripe_customer(
            account=account, payment_method="pm_card_visa", test_clock=clock.id
        )
        subscription_create(account=account, plan=plan)
        made[name] = account
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=NOW)
    assert not stripe_sync_everything().errors
    with time_machine.travel(NOW, tick=False):
        for name, counts in accounts.items():
            customer = customer_id_for_account(account=made[name])
            events = _events(customer, name, counts)
            for i in range(0, len(events), 1_000):
                result = usage_events_ingest(events=events[i : i + 1_000], now=NOW)
                assert not result.rejected, result.rejected[:3]
        usage_report_pass(now=NOW, flush=True)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=RENEWED)
    assert not stripe_sync_everything().errors
    return made


def _renewal(account):
    [invoice] = [i for i in account_invoices(account=account) if i.usage_lines]
    assert invoice.status == "paid"
    return invoice


def _values(html: str, testid: str) -> list[int]:
    """The ``data-value`` of each row ``data-testid=testid``."""
    rows = re.findall(rf'data-testid="{testid}".*?data-value="(\d+)"', html, flags=re.S)
    return [int(v) for v in rows]


def _links(html: str, marker: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in re.findall(rf'href="([^"]*/{marker}/[^"]*)"', html)]


def _total(html: str, testid: str) -> int:
    return int(re.search(rf'data-testid="{testid}">([\d,]+)', html).group(1).replace(",", ""))


def test_every_level_sums_to_its_parent_and_the_top_is_stripes_line(
    client, stripe_client, trio_plan
):
    # 50,000 events: 40,000 API calls, 9,000 gigabyte events, 1,000 seat events.
    counts = {"api_calls": 40_000, "data_transfer_gb": 9_000, "seats": 1_000}
    account = _period(stripe_client, trio_plan, {"big": counts})["big"]
    invoice = _renewal(account)
    # Stripe's lines: 40,000 calls; gigabytes: 9,000 events valued 1..5 cycling evenly
    # (9,000 / 5 = 1,800 of each) = 1,800 x 15 = 27,000; seats (last): event 999 is
    # 1 + 999 % 9 = 1 + 0 = 1.
    quantities = {line.meter.event_name: line.quantity for line in invoice.usage_lines}
    assert quantities == {"api_calls": 40_000, "data_transfer_gb": 27_000, "seats": 1}
    client.force_login(make_user(account, "auditor"))
    invoices_html = client.get(reverse("dashboards:invoices")).content.decode()
    for line in invoice.usage_lines:
        url = reverse("dashboards:drilldown_line", args=[invoice.id, line.id])
        assert f'href="{url}"' in invoices_html  # linked from the invoices page
        html = client.get(url).content.decode()
        assert _total(html, "line-quantity") == line.quantity
        assert _total(html, "ledger-total") == line.quantity
        assert "quantity-differs" not in html
        days = _values(html, "day-row")
        # Sep 1 .. Sep 5: every day of the spread has usage.
        assert len(days) == 5
        is_last = line.meter.aggregation == "last"
        assert (days[-1] if is_last else sum(days)) == line.quantity
        for day_value, day_url in zip(days, _links(html, "days"), strict=True):
            day_html = client.get(day_url).content.decode()
            hours = _values(day_html, "hour-row")
            assert _total(day_html, "day-total") == day_value
            assert (hours[-1] if is_last else sum(hours)) == day_value
        # Every page of the last hour listed on the last day, walked by its cursor.
        hour_url = _links(day_html, "hours")[-1]
        hour_html = client.get(hour_url).content.decode()
        hour_value = hours[-1]
        assert _total(hour_html, "hour-total") == hour_value
        values, pages = [], 0
        while True:
            pages += 1
            values += _values(hour_html, "event-row")
            assert 'data-testid="report-identifier">' in hour_html  # reported, named
            nxt = re.search(r'rel="next" data-testid="next-page" href="([^"]+)"', hour_html)
            if not nxt:
                break
            hour_html = client.get(nxt.group(1).replace("&amp;", "&")).content.decode()
        assert (values[-1] if is_last else sum(values)) == hour_value
        if line.meter.event_name == "api_calls":
            # 40,000 calls in 107 hours: 373 or 374 an hour, so 4 pages of 100.
            assert len(values) in (373, 374) and pages == 4
    _statement_reconciles(client, invoice)


def _statement_reconciles(client, invoice):
    """The statement's total is Stripe's invoice total, on the page and in the CSV; the
    lines' amounts and their pricing rows add up; every sent report is named."""
    html = client.get(reverse("dashboards:statement", args=[invoice.id])).content.decode()
    assert 'data-testid="reconciles"' in html
    total = re.search(r'data-testid="statement-total">([^<]+)<', html).group(1)
    stripe = re.search(r'data-testid="stripe-total">([^<]+)<', html).group(1)
    assert total == stripe == f"${invoice.total // 100:,}.{invoice.total % 100:02d}"
    response = client.get(reverse("dashboards:statement_csv", args=[invoice.id]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    cents = {r["record"]: round(Decimal(r["amount"]) * 100) for r in rows if not r["line"]}
    assert cents["total"] == cents["stripe_total"] == invoice.total
    lines = [r for r in rows if r["record"] == "line"]
    assert sum(round(Decimal(r["amount"]) * 100) for r in lines) == cents["subtotal"]
    for line in invoice.usage_lines:
        name = next(r["line"] for r in lines if r["detail"] == "metered" and
                    int(r["quantity"]) == line.quantity)  # fmt: skip
        tiers = [r for r in rows if r["record"] == "tier" and r["line"] == name]
        assert sum(round(Decimal(r["amount"]) * 100) for r in tiers) == line.amount
        reports = [r for r in rows if r["record"] == "report" and r["line"] == name]
        assert reports and all(r["amount"] == "sent" for r in reports)
        days = [int(r["quantity"]) for r in rows if r["record"] == "day" and r["line"] == name]
        if line.meter.aggregation == "last":
            assert days[-1] == line.quantity
        else:
            assert sum(days) == line.quantity == sum(int(r["quantity"]) for r in reports)


def test_another_accounts_drilldown_is_404_and_staff_need_view_permission(
    client, stripe_client, trio_plan
):
    small = {"api_calls": 30, "data_transfer_gb": 10, "seats": 3}
    made = _period(stripe_client, trio_plan, {"alpha": small, "bravo": small})
    theirs = _renewal(made["bravo"])
    line = theirs.usage_lines[0]
    urls = [
        reverse("dashboards:drilldown_line", args=[theirs.id, line.id]),
        reverse("dashboards:drilldown_day", args=[theirs.id, line.id, "2026-09-02"]),
        reverse("dashboards:drilldown_hour", args=[theirs.id, line.id, "2026-09-02T10"]),
    ]
    client.force_login(make_user(made["bravo"], "bravo-user"))
    assert [client.get(u).status_code for u in urls] == [200, 200, 200]
    client.force_login(make_user(made["alpha"], "alpha-user"))
    assert [client.get(u).status_code for u in urls] == [404, 404, 404]
    # ... also when asking for it by account id.
    query = {"account": made["bravo"].pk}
    assert [client.get(u, query).status_code for u in urls] == [404, 404, 404]
    # Outside the line's period, malformed, or a cursor that is not one: 404 for its owner.
    client.force_login(make_user(made["bravo"], "bravo-2"))
    base = reverse("dashboards:drilldown_line", args=[theirs.id, line.id])
    for bad in ("days/2026-10-01/", "days/2026-13-01/", "hours/2026-08-31T23/", "hours/x/"):
        assert client.get(base + bad).status_code == 404, bad
    assert client.get(urls[2], {"after": "nope"}).status_code == 404
    # The statements: bravo's own is there, alpha gets 404 for it, by id or by account.
    statements = [
        reverse("dashboards:statement", args=[theirs.id]),
        reverse("dashboards:statement_csv", args=[theirs.id]),
    ]
    assert [client.get(u).status_code for u in statements] == [200, 200]
    client.force_login(make_user(made["alpha"], "alpha-2"))
    assert [client.get(u).status_code for u in statements] == [404, 404]
    assert [client.get(u, query).status_code for u in statements] == [404, 404]
    opened = [reverse("dashboards:statement_open"), reverse("dashboards:statement_open_csv")]
    assert [client.get(u).status_code for u in opened] == [200, 200]
    assert [client.get(u, query).status_code for u in opened] == [404, 404]


def test_staff_view_as_keeps_the_account_on_drilldown_links(client, stripe_client, trio_plan):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    made = _period(stripe_client, trio_plan, {"charlie": {"api_calls": 5}})
    invoice = _renewal(made["charlie"])
    line = invoice.usage_lines[0]
    staff = get_user_model().objects.create_user("staffer", password="pw-staffer-123")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    url = reverse("dashboards:drilldown_line", args=[invoice.id, line.id])
    query = {"account": made["charlie"].pk}
    assert client.get(url, query).status_code == 403  # no billing.view_account
    staff.user_permissions.add(
        Permission.objects.get(codename="view_account", content_type__app_label="billing")
    )
    html = client.get(url, query).content.decode()
    # 5 calls spread over 107 h: at 0, 21.4, 42.8, 64.2 and 85.6 h, so on
    # Sep 1, Sep 1, Sep 2, Sep 3, Sep 4) -- each day link keeps ?account=.
    assert _total(html, "line-quantity") == 5
    links = _links(html, "days")
    assert len(links) == 4 and all(f"account={made['charlie'].pk}" in u for u in links)


def test_parity_names_usage_reported_after_finalization_and_its_cost(
    client, stripe_client, trio_plan
):
    # 10 gigabyte events valued 1..5 twice: 2 x 15 = 30 GB on Sep's invoice line.
    made = _period(stripe_client, trio_plan, {"delta": {"data_transfer_gb": 10}})
    account = made["delta"]
    invoice = _renewal(account)
    [line] = [x for x in invoice.usage_lines if x.meter.event_name == "data_transfer_gb"]
    assert line.quantity == 30
    client.force_login(make_user(account, "delta-user"))
    before = client.get(reverse("dashboards:drilldown_line", args=[invoice.id, line.id]))
    assert 'data-testid="parity-ok"' in before.content.decode()  # 30 = 30 = 30
    # After the invoice finalized (Oct 1 01:00): 7 GB stamped Sep 30 arrive and are sent
    # (Stripe takes them: within its 35 days), then the period is reconciled.
    late = RENEWED + timedelta(minutes=5)
    customer = customer_id_for_account(account=account)
    with time_machine.travel(late, tick=False):
        stamped = int(datetime(2026, 9, 30, 12, tzinfo=UTC).timestamp())
        result = usage_events_ingest(
            events=[{"event_name": "data_transfer_gb", "customer": customer, "value": 7,
                     "identifier": "late-gb", "timestamp": stamped}],
            now=late,
        )  # fmt: skip
        assert not result.rejected, result.rejected
        usage_report_pass(now=late, flush=True)
        usage_reconcile(now=late)
    html = client.get(reverse("dashboards:invoices")).content.decode()
    parity = html[html.index('data-testid="parity-data_transfer_gb"') :]
    parity = parity[: parity.index("</div>")]
    # Ledger 30 + 7 = 37; reported 37; Stripe's summaries 37; the invoice still 30.
    assert 'data-testid="parity-ledger">37<' in parity
    assert 'data-testid="parity-reported">37<' in parity
    assert 'data-testid="parity-stripe">37<' in parity
    assert 'data-testid="parity-invoiced">30<' in parity
    assert "parity-ok" not in parity
    # The 7 GB at 5¢ each: 35¢ not billed, named as reported after finalization.
    late_item = re.search(r'data-testid="parity-late">([^<]+)<', parity).group(1)
    assert late_item.endswith(": 7 GB, $0.35"), late_item
    assert "parity-unexplained" not in parity
    page = client.get(reverse("dashboards:drilldown_line", args=[invoice.id, line.id]))
    assert 'data-testid="quantity-differs"' in page.content.decode()
    # Admin shows the same beside the reconciliation.
    admin_user = get_user_model().objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin_user)
    result = ReconciliationResult.objects.get(account=account, meter=line.meter)
    html = client.get(reverse("admin:usage_reconciliationresult_change", args=[result.pk]))
    html = html.content.decode()
    assert "ledger 37 · reported 37 · Stripe 37 · invoice 30." in html
    assert "finalized (in Stripe&#x27;s summaries, not on the invoice): 7 (+35 minor units)" in html


def test_a_voided_event_is_listed_as_voided_and_left_out_of_the_hour(
    client, stripe_client, trio_plan
):
    # 10 gigabyte events valued 1..5 twice over 107 h: event i at i x 10.7 h. Events 0
    # (Sep 1 00:00, 1 GB) and 1 (Sep 1 10:42, 2 GB) fall in different hours.
    made = _period(stripe_client, trio_plan, {"echo": {"data_transfer_gb": 10}})
    account = made["echo"]
    invoice = _renewal(account)
    [line] = [x for x in invoice.usage_lines if x.meter.event_name == "data_transfer_gb"]
    with time_machine.travel(RENEWED + timedelta(minutes=5), tick=False):
        usage_events_void(
            account=account, meter=line.meter, identifiers=["echo-data_transfer_gb-1"],
            reason="Duplicate upload", now=RENEWED + timedelta(minutes=5),
        )  # fmt: skip
    client.force_login(make_user(account, "echo-user"))
    url = reverse("dashboards:drilldown_hour", args=[invoice.id, line.id, "2026-09-01T10"])
    html = client.get(url).content.decode()
    assert 'data-testid="event-row-voided"' in html and "Duplicate upload" in html
    assert _values(html, "event-row") == []  # the hour's only event is voided
    assert _total(html, "hour-total") == 0
    # The line's days: 30 - 2 = 28 GB in the ledger now; the invoice still says 30.
    html = client.get(reverse("dashboards:drilldown_line", args=[invoice.id, line.id]))
    html = html.content.decode()
    assert _total(html, "ledger-total") == 28 and _total(html, "line-quantity") == 30
    assert 'data-testid="quantity-differs"' in html
