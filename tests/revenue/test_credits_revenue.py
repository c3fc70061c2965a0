"""Revenue recognition of billing credits (revenue/credits.py): deferral of paid credits,
consumption with usage, breakage at expiry, promotional discount; every month balances
and ties out. Amounts in cents, worked by hand in the comments.

The scenario (USD), used by the pure test and the selector test:

- grant A, paid: 10,000 credits bought for 10,000, purchase invoice finalized 10 Jan;
- grant B, promotional: 2,000 credits;
- January's metered line: 15,000 gross for usage 1 Jan .. 1 Feb (100 units on 5 Jan,
  200 on 20 Jan, 700 on 31 Jan: 1,000), finalized 1 Feb 01:00 with 2,000 from B and
  10,000 from A applied: 15,000 − 2,000 − 10,000 = 3,000 billed;
- grant C, paid: 5,000 credits bought for 5,000 on 5 Feb, expiring 15 Mar;
- February's metered line: 1,000 gross for usage 1 Feb .. 1 Mar (all on 10 Feb),
  finalized 1 Mar 01:00, all 1,000 paid by C: 0 billed;
- C expires on 15 Mar with 5,000 − 1,000 = 4,000 left: breakage.

By day (January line; cumulative floors, usage weights 100/200/700 of 1,000):
  paid 10,000: 5 Jan floor(10,000 × 100/1,000) = 1,000; 20 Jan floor(10,000 × 300/1,000)
  − 1,000 = 2,000; 31 Jan 10,000 − 3,000 = 7,000.
  promotional 2,000: 200, 400, 1,400. billed part 3,000: 300, 600, 2,100.

Month by month:
  January:  billed 0; sold 10,000 (A); recognized 3,000 (the billed part, earned in
            January, invoiced in February: unbilled); consumed 10,000; promotional
            discount 2,000; breakage 0. Revenue (gross) 3,000 + 10,000 + 2,000 = 15,000,
            net 13,000. Prepaid 0 + 10,000 − 10,000 − 0 = 0; deferred 0; unbilled 3,000.
            Journal: AR/Prepaid 10,000; Unbilled/Revenue 3,000; Prepaid/Revenue 10,000;
            Promotional/Revenue 2,000: debits 25,000 = credits 25,000.
  February: billed 3,000 (January's invoice); sold 5,000 (C); consumed 1,000 (10 Feb);
            recognized 0; revenue 1,000 = net. Prepaid 0 + 5,000 − 1,000 = 4,000;
            deferred 0 + 3,000 − 3,000 (accrual reversed) = 0; unbilled 3,000 − 3,000 = 0.
            Journal: AR/Deferred 3,000; Deferred/Unbilled 3,000; AR/Prepaid 5,000;
            Prepaid/Revenue 1,000: 12,000 = 12,000.
  March:    billed 0 (February's invoice is all credits); breakage 4,000 (15 Mar);
            revenue 4,000 = net. Prepaid 4,000 − 4,000 = 0. Journal: Prepaid/Revenue
            4,000: 4,000 = 4,000.
  Totals: A earned 10,000 = its price; C 1,000 + 4,000 = 5,000 = its price.
"""

from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.mirror.invoices import invoice_from_stripe
from revenue.credits import (
    BREAKAGE,
    CREDITS_SOLD,
    PAID_CREDITS,
    PROMOTIONAL_CREDITS,
    Application,
    Expiry,
    Grant,
    Sale,
    credit_line_schedule,
    credit_revenue_lines,
    money_for_credits,
)
from revenue.invoices import invoice_revenue_lines
from revenue.waterfall import (
    ALL_COLUMNS,
    COLUMNS,
    PREPAID,
    PROMOTIONAL,
    REVENUE,
    columns_for,
    journals,
    waterfall,
)


def _ts(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


JAN_1, FEB_1, MAR_1 = _ts(2026, 1, 1), _ts(2026, 2, 1), _ts(2026, 3, 1)
JAN_USAGE = {date(2026, 1, 5): 100, date(2026, 1, 20): 200, date(2026, 1, 31): 700}
FEB_USAGE = {date(2026, 2, 10): 50}
MAR_15 = datetime(2026, 3, 15, tzinfo=UTC)

A = Grant("A", "paid", "usd", 10_000, 10_000, "in_buy_a", name="A")
B = Grant("B", "promotional", "usd", 2_000, name="B")
C = Grant("C", "paid", "usd", 5_000, 5_000, "in_buy_c", name="C")


def _credits(*pairs):
    return [
        {"amount": amount, "type": "credit_balance_transaction",
         "credit_balance_transaction": txn, "discount": None}
        for txn, amount in pairs
    ]  # fmt: skip


def _metered_invoice(invoice_id, line_id, *, gross, start, end, finalized, credits):
    data = {
        "id": invoice_id,
        "currency": "usd",
        "status": "paid",
        "status_transitions": {"finalized_at": finalized},
    }
    lines = [
        {
            "id": line_id,
            "amount": gross,
            "period": {"start": start, "end": end},
            # Stripe lists discounts here too (type "discount"): not a credit.
            "pretax_credit_amounts": [
                *_credits(*credits),
                {"amount": 0, "type": "discount", "discount": "di_x"},
            ],
        }
    ]
    return invoice_from_stripe(data, lines=lines)


def test_mirror_reads_credits_from_pretax_credit_amounts():
    invoice = _metered_invoice("in_jan", "il_jan", gross=15_000, start=JAN_1, end=FEB_1,
                               finalized=FEB_1 + 3600,
                               credits=[("cbtxn_b", 2_000), ("cbtxn_a", 10_000)])  # fmt: skip
    (line,) = invoice.lines
    assert line.credit_amounts == (("cbtxn_b", 2_000), ("cbtxn_a", 10_000))
    assert line.credited == invoice.credited == 12_000
    # The billed part: 15,000 − 12,000 = 3,000.
    (revenue_line,) = invoice_revenue_lines(invoice)
    assert (revenue_line.amount, revenue_line.gross) == (3_000, 15_000)


def test_purchase_price_is_recognized_in_proportion_and_adds_up_exactly():
    # 3,000 credits bought for 1,000, used 1,000 at a time:
    # floor(1,000 × 1,000/3,000) = 333; floor(1,000 × 2,000/3,000) = 666 -> 333;
    # 1,000 − 666 = 334. 333 + 333 + 334 = 1,000.
    cheap = Grant("X", "paid", "usd", 3_000, 1_000)
    assert money_for_credits(cheap, [1_000, 1_000, 1_000]) == [333, 333, 334]
    # 5,000 for 4,500: 1,000 used earns floor(1,000 × 4,500/5,000) = 900; the 4,000 that
    # expire: 4,500 − 900 = 3,600.
    assert money_for_credits(Grant("Y", "paid", "usd", 5_000, 4_500), [1_000, 4_000]) == [
        900,
        3_600,
    ]
    # Same price as credits: one for one.
    assert money_for_credits(A, [7, 9_993]) == [7, 9_993]


def _scenario_lines():
    jan = _metered_invoice("in_jan", "il_jan", gross=15_000, start=JAN_1, end=FEB_1,
                           finalized=FEB_1 + 3600,
                           credits=[("cbtxn_b", 2_000), ("cbtxn_a", 10_000)])  # fmt: skip
    feb = _metered_invoice("in_feb", "il_feb", gross=1_000, start=FEB_1, end=MAR_1,
                           finalized=MAR_1 + 3600, credits=[("cbtxn_c", 1_000)])  # fmt: skip

    def metered(usage):
        return lambda line, start, end: ("metered", usage)

    (jan_line,) = invoice_revenue_lines(jan, classify=metered(JAN_USAGE))
    (feb_line,) = invoice_revenue_lines(feb, classify=metered(FEB_USAGE))
    credit_lines, warnings = credit_revenue_lines(
        grants={g.key: g for g in (A, B, C)},
        sales=[Sale("A", "in_buy_a", date(2026, 1, 10)), Sale("C", "in_buy_c", date(2026, 2, 5))],
        applications=[
            Application("B", 2_000, jan_line, jan.billed_at, "cbtxn_b"),
            Application("A", 10_000, jan_line, jan.billed_at, "cbtxn_a"),
            Application("C", 1_000, feb_line, feb.billed_at, "cbtxn_c"),
        ],
        expiries=[Expiry("C", 4_000, MAR_15, "cbtxn_c_exp")],
    )
    assert warnings == []
    return [jan_line, feb_line, *credit_lines]


def _figures(rows):
    return {
        fig.month: (
            fig.billed, fig.credits_sold, fig.recognized, fig.credits_consumed,
            fig.promotional_discount, fig.breakage, fig.revenue, fig.net_revenue,
            fig.prepaid_credits_end, fig.deferred_end, fig.unbilled_end,
        )
        for fig in rows
    }  # fmt: skip


# (billed, sold, recognized, consumed, discount, breakage, revenue, net, prepaid,
#  deferred, unbilled), worked in the module docstring.
EXPECTED = {
    "2026-01": (0, 10_000, 3_000, 10_000, 2_000, 0, 15_000, 13_000, 0, 0, 3_000),
    "2026-02": (3_000, 5_000, 0, 1_000, 0, 0, 1_000, 1_000, 4_000, 0, 0),
    "2026-03": (0, 0, 0, 0, 0, 4_000, 4_000, 4_000, 0, 0, 0),
}


def _assert_journals(rows):
    js = journals(rows)
    for journal in js:
        assert journal.balanced, (journal.month, journal.problems)
    jan, feb, mar = js
    # January: 10,000 + 3,000 + 10,000 + 2,000 = 25,000 on each side.
    assert jan.total_debits == jan.total_credits == 25_000
    assert jan.by_account()[PREPAID] == (10_000, 10_000)  # consumed / sold
    assert jan.by_account()[PROMOTIONAL] == (2_000, 0)
    assert jan.by_account()[REVENUE] == (0, 15_000)
    # February: 3,000 + 3,000 + 5,000 + 1,000 = 12,000; prepaid +5,000 − 1,000 = +4,000.
    assert feb.total_debits == feb.total_credits == 12_000
    assert feb.by_account()[PREPAID] == (1_000, 5_000)
    # March: breakage 4,000.
    assert mar.total_debits == mar.total_credits == 4_000
    assert [(e.debit, e.credit, e.amount) for e in mar.entries] == [(PREPAID, REVENUE, 4_000)]


def test_deferral_consumption_breakage_and_promotional_discount_every_month_balances():
    lines = _scenario_lines()
    kinds = sorted(line.kind for line in lines)
    assert kinds == sorted(["metered", "metered", CREDITS_SOLD, CREDITS_SOLD,
                            PROMOTIONAL_CREDITS, PAID_CREDITS, PAID_CREDITS, BREAKAGE])  # fmt: skip
    # By day, the paid and promotional parts follow the January usage (docstring).
    paid_a = next(x for x in lines if x.kind == PAID_CREDITS and x.line_id == "il_jan")
    promo = next(x for x in lines if x.kind == PROMOTIONAL_CREDITS)
    assert [(d.day.day, d.amount) for d in credit_line_schedule(paid_a) if d.amount] == [
        (5, 1_000), (20, 2_000), (31, 7_000)
    ]  # fmt: skip
    assert [(d.day.day, d.amount) for d in credit_line_schedule(promo) if d.amount] == [
        (5, 200), (20, 400), (31, 1_400)
    ]  # fmt: skip
    rows = waterfall(lines=lines, as_of=date(2026, 3, 20))["usd"]
    assert _figures(rows) == EXPECTED
    assert columns_for(rows) == ALL_COLUMNS
    _assert_journals(rows)


def test_a_discounted_purchase_across_months_is_exact():
    """3,000 credits bought for 1,000 (purchase invoice 14 Jan); a line 15 Jan .. 15 Feb
    with usage 1 on 20 Jan and 2 on 10 Feb, 3,000 gross, all paid by the grant.
    Money 1,000 over weights 1/2: January floor(1,000 × 1/3) = 333, February 667.
    Prepaid: January 1,000 − 333 = 667, February 667 − 667 = 0 (the price, exactly)."""
    grant = Grant("X", "paid", "usd", 3_000, 1_000, "in_buy_x")
    start, end = _ts(2026, 1, 15), _ts(2026, 2, 15)
    invoice = _metered_invoice("in_x", "il_x", gross=3_000, start=start, end=end,
                               finalized=end + 3600, credits=[("cbtxn_x", 3_000)])  # fmt: skip
    usage = {date(2026, 1, 20): 1, date(2026, 2, 10): 2}
    (line,) = invoice_revenue_lines(invoice, classify=lambda *a: ("metered", usage))
    assert line.amount == 0  # nothing billed
    credit_lines, warnings = credit_revenue_lines(
        grants={"X": grant},
        sales=[Sale("X", "in_buy_x", date(2026, 1, 14))],
        applications=[Application("X", 3_000, line, invoice.billed_at)],
    )
    assert warnings == []
    rows = waterfall(lines=[line, *credit_lines])["usd"]
    assert [(f.month, f.credits_sold, f.credits_consumed, f.prepaid_credits_end) for f in rows] == [
        ("2026-01", 1_000, 333, 667),
        ("2026-02", 0, 667, 0),
    ]
    assert all(j.balanced for j in journals(rows))


def test_promotional_expiry_is_no_entry_and_an_unknown_grant_is_a_discount_with_a_warning():
    invoice = _metered_invoice("in_u", "il_u", gross=500, start=JAN_1, end=FEB_1,
                               finalized=FEB_1 + 60, credits=[("cbtxn_unknown", 200)])  # fmt: skip
    (line,) = invoice_revenue_lines(invoice)
    credit_lines, warnings = credit_revenue_lines(
        grants={"B": B},
        applications=[Application("", 200, line, invoice.billed_at, "cbtxn_unknown")],
        expiries=[Expiry("B", 2_000, MAR_15)],  # promotional: nothing
    )
    assert [x.kind for x in credit_lines] == [PROMOTIONAL_CREDITS]
    assert "cbtxn_unknown" in warnings[0]
    # 500 gross: 300 billed + 200 promotional; January revenue 500 gross, 300 net.
    rows = waterfall(lines=[line, *credit_lines])["usd"]
    assert [(f.month, f.revenue, f.net_revenue, f.promotional_discount) for f in rows] == [
        ("2026-01", 500, 300, 200),
        ("2026-02", 0, 0, 0),
    ]
    assert all(j.balanced for j in journals(rows))


def test_without_credits_the_columns_are_the_old_ones():
    invoice = _metered_invoice("in_n", "il_n", gross=500, start=JAN_1, end=FEB_1,
                               finalized=FEB_1 + 60, credits=[])  # fmt: skip
    rows = waterfall(lines=invoice_revenue_lines(invoice))["usd"]
    assert columns_for(rows) == COLUMNS


# -- selector level: database rows ------------------------------------------------------


@pytest.fixture
def credit_account(db):
    from djstripe.models import Customer
    from djstripe.models import Invoice as MirroredInvoice

    from billing.models import Account, Meter, Plan, PlanPrice
    from billing.models_credits import CreditBalanceTransaction, CreditGrant
    from usage.models import UsageRollup

    account = Account.objects.create(name="Credits Co", billing_email="ap@credits.test")
    customer = Customer.objects.create(
        id="cus_credits", subscriber=account, livemode=False, stripe_data={"id": "cus_credits"}
    )
    meter = Meter.objects.create(
        event_name="credit_calls", display_name="Calls", aggregation=Meter.Aggregation.SUM
    )
    plan = Plan.objects.create(key="credits-plan", name="Credits plan")
    PlanPrice.objects.create(
        plan=plan, lookup_key="credits-calls", meter=meter, stripe_price_id="price_calls"
    )
    for day, value in (JAN_USAGE | FEB_USAGE).items():
        hour = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        UsageRollup.objects.create(
            account=account, meter=meter, hour=hour, sum_value=value, event_count=1,
            last_value=value, last_timestamp=hour,
        )  # fmt: skip

    def invoice(invoice_id, *, finalized, lines, status="paid"):
        data = {"id": invoice_id, "object": "invoice", "currency": "usd", "status": status,
                "customer": customer.id, "created": finalized,
                "status_transitions": {"finalized_at": finalized},
                "lines": {"data": lines, "has_more": False, "total_count": len(lines)}}  # fmt: skip
        MirroredInvoice.objects.create(
            id=invoice_id, customer=customer, livemode=False, stripe_data=data
        )

    def usage_line(line_id, gross, start, end, credits):
        return {"id": line_id, "amount": gross, "quantity": 1,
                "pricing": {"price_details": {"price": "price_calls"}},
                "period": {"start": start, "end": end},
                "pretax_credit_amounts": _credits(*credits)}  # fmt: skip

    def purchase_line(line_id, amount, at):
        return {"id": line_id, "amount": amount, "period": {"start": at, "end": at}}

    jan_10, feb_5 = _ts(2026, 1, 10, 9), _ts(2026, 2, 5, 9)
    invoice("in_buy_a", finalized=jan_10, lines=[purchase_line("il_buy_a", 10_000, jan_10)])
    invoice("in_buy_c", finalized=feb_5, lines=[purchase_line("il_buy_c", 5_000, feb_5)])
    invoice("in_jan", finalized=FEB_1 + 3600, lines=[usage_line(
        "il_jan", 15_000, JAN_1, FEB_1, [("cbtxn_b", 2_000), ("cbtxn_a", 10_000)])])  # fmt: skip
    invoice("in_feb", finalized=MAR_1 + 3600,
            lines=[usage_line("il_feb", 1_000, FEB_1, MAR_1, [("cbtxn_c", 1_000)])])  # fmt: skip
    # A voided invoice whose 500 credits from C were reinstated: not in the report.
    invoice("in_void", finalized=MAR_1 + 7200, status="void",
            lines=[usage_line("il_void", 500, FEB_1, MAR_1, [("cbtxn_c_void", 500)])])  # fmt: skip

    def grant(name, category, amount, purchase, invoice_id="", expires=None):
        return CreditGrant.objects.create(
            account=account, name=name, category=category, amount=amount, currency="usd",
            purchase_amount=purchase, purchase_invoice_id=invoice_id, expires_at=expires,
            status=CreditGrant.Status.ACTIVE, stripe_id=f"credgr_{name}",
        )  # fmt: skip

    a = grant("A", "paid", 10_000, 10_000, "in_buy_a")
    b = grant("B", "promotional", 2_000, None)
    c = grant("C", "paid", 5_000, 5_000, "in_buy_c", expires=MAR_15)

    def txn(stripe_id, g, type_, kind, amount, at, invoice_id="", line_id=""):
        CreditBalanceTransaction.objects.create(
            stripe_id=stripe_id, grant=g, account=account, type=type_, kind=kind,
            amount=amount, currency="usd", effective_at=at, invoice_id=invoice_id,
            invoice_line_item_id=line_id,
        )  # fmt: skip

    t = datetime.fromtimestamp
    txn("cbtxn_a0", a, "credit", "credits_granted", 10_000, t(jan_10, UTC))
    txn("cbtxn_b0", b, "credit", "credits_granted", 2_000, t(JAN_1, UTC))
    txn("cbtxn_c0", c, "credit", "credits_granted", 5_000, t(feb_5, UTC))
    txn("cbtxn_b", b, "debit", "credits_applied", 2_000, t(FEB_1 + 3600, UTC), "in_jan", "il_jan")
    txn("cbtxn_a", a, "debit", "credits_applied", 10_000, t(FEB_1 + 3600, UTC), "in_jan", "il_jan")
    txn("cbtxn_c", c, "debit", "credits_applied", 1_000, t(MAR_1 + 3600, UTC), "in_feb", "il_feb")
    txn("cbtxn_c_void", c, "debit", "credits_applied", 500, t(MAR_1 + 7200, UTC), "in_void",
        "il_void")  # fmt: skip
    txn("cbtxn_c_back", c, "credit", "credits_application_invoice_voided", 500,
        t(MAR_1 + 9000, UTC), "in_void", "il_void")  # fmt: skip
    txn("cbtxn_c_exp", c, "debit", "credits_expired", 4_000, MAR_15)
    return account


def test_revenue_report_from_grants_transactions_and_mirrored_invoices(credit_account):
    from revenue.selectors import revenue_lines, revenue_report

    lines, warnings, _ = revenue_lines(account=credit_account)
    assert warnings == []
    # The purchase invoices are not ordinary lines: two sales instead.
    assert sorted((x.kind, x.amount) for x in lines if x.kind == CREDITS_SOLD) == [
        (CREDITS_SOLD, 5_000), (CREDITS_SOLD, 10_000)
    ]  # fmt: skip
    assert not any(x.invoice_id.startswith("in_buy") and x.kind == "metered" for x in lines)
    # The paid part of January's line follows the usage rollups by day.
    paid_a = next(x for x in lines if x.kind == PAID_CREDITS and x.line_id == "il_jan")
    assert [(d.day.day, d.amount) for d in credit_line_schedule(paid_a) if d.amount] == [
        (5, 1_000), (20, 2_000), (31, 7_000)
    ]  # fmt: skip

    report = revenue_report(account=credit_account, now=datetime(2026, 3, 20, tzinfo=UTC))
    rows = report.by_currency["usd"]
    assert _figures(rows) == EXPECTED
    _assert_journals(rows)
    # Carried over: April (no activity) has the March balances.
    april = report.figures_for("usd", "2026-04")
    assert (april.prepaid_credits_end, april.deferred_end, april.unbilled_end) == (0, 0, 0)


def test_page_csv_and_command_show_the_credit_columns(credit_account, client):
    import csv
    import io

    import time_machine
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    with time_machine.travel(datetime(2026, 3, 20, 12, tzinfo=UTC), tick=False):
        _page_csv_and_command(credit_account, client, csv, io, get_user_model, call_command)


def _page_csv_and_command(credit_account, client, csv, io, get_user_model, call_command):
    staff = get_user_model().objects.create_superuser("fin", "fin@x.test", "pw")
    client.force_login(staff)
    html = client.get(f"/admin/revenue/?account={credit_account.pk}").content.decode()
    # January's prepaid credits balance cell and the promotional discount.
    assert 'data-column="promotional_discount" data-minor="2000"' in html
    assert 'data-column="credits_sold" data-minor="10000"' in html
    assert 'data-column="net_revenue" data-minor="13000"' in html
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/admin/revenue/waterfall.csv?account={credit_account.pk}").content.decode()
    )))  # fmt: skip
    feb = next(r for r in rows if r["month"] == "2026-02")
    assert feb["prepaid_credits_end_minor_units"] == "4000"
    assert feb["credits_sold_minor_units"] == "5000"
    out = io.StringIO()
    call_command("revenue_report", month="2026-03", account=credit_account.pk, stdout=out)
    text = out.getvalue()
    assert "Breakage: paid credits expired" in text and "$40.00" in text
    assert "Prepaid credits (deferred)" in text and ": balanced" in text


def test_days_after_the_report_date_are_not_consumed_yet():
    lines = _scenario_lines()
    # As of 20 Jan: the paid part earned 5 Jan (1,000) and 20 Jan (2,000) only. (The
    # invoice is from 1 Feb; this checks the cut-off of the credit lines alone.)
    rows = waterfall(lines=[x for x in lines if x.kind == PAID_CREDITS], as_of=date(2026, 1, 20))
    assert rows["usd"][0].credits_consumed == 3_000


# -- properties -------------------------------------------------------------------------


@st.composite
def used_up_grants(draw):
    """A paid grant (any purchase price, discounted or not) used by 1..4 invoice lines
    (random periods and usage) and expired with whatever is left."""
    amount = draw(st.integers(1, 10**9))
    price = draw(st.integers(0, 10**9))
    grant = Grant("G", "paid", "usd", amount, price, "in_buy")
    uses, left = [], amount
    for i in range(draw(st.integers(1, 4))):
        credits = draw(st.integers(0, left))
        left -= credits
        start = _ts(2026, 1, 1) + draw(st.integers(0, 200)) * 86400
        end = start + draw(st.integers(0, 60)) * 86400
        usage = {date(2026, 1, 1): 0}
        if end > start and draw(st.booleans()):
            usage = {datetime.fromtimestamp(start, UTC).date(): draw(st.integers(0, 10**6))}
        line = invoice_revenue_lines(
            _metered_invoice(f"in_{i}", f"il_{i}", gross=credits, start=start, end=end,
                             finalized=end + 60, credits=[(f"t{i}", credits)]),
            classify=lambda *a, usage=usage: ("metered", usage),
        )[0]  # fmt: skip
        uses.append(Application("G", credits, line, datetime.fromtimestamp(end + 60, UTC)))
    expiry = Expiry("G", left, datetime(2026, 12, 31, tzinfo=UTC))
    return grant, uses, expiry


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(used_up_grants())
def test_a_used_up_paid_grant_earns_its_purchase_price_exactly(case):
    grant, uses, expiry = case
    lines, warnings = credit_revenue_lines(
        grants={"G": grant},
        sales=[Sale("G", "in_buy", date(2026, 1, 1))],
        applications=uses,
        expiries=[expiry],
    )
    assert warnings == []
    earned = [x for x in lines if x.kind in (PAID_CREDITS, BREAKAGE)]
    assert sum(x.amount for x in earned) == grant.purchase_amount
    for line in earned:
        schedule = credit_line_schedule(line)
        assert sum(d.amount for d in schedule) == line.amount
        assert all(d.amount >= 0 for d in schedule)
    rows = waterfall(lines=lines)["usd"]
    assert sum(f.credits_consumed + f.breakage for f in rows) == grant.purchase_amount
    assert rows[-1].prepaid_credits_end == 0
    assert all(f.prepaid_credits_end >= 0 for f in rows)  # bought on 1 Jan, before any use
    assert all(j.balanced for j in journals(rows)), [j.problems for j in journals(rows)]


def test_reinstated_credits_reverse_the_consumption_even_before_the_void_is_mirrored(
    credit_account,
):
    """Stripe voided February's invoice and reinstated C's 1,000 credits
    (``credits_application_invoice_voided``), but the mirror still shows the invoice
    paid: the 1,000 are no longer consumed (February 1,000 − 1,000 = 0), so February's
    prepaid balance is 5,000; on 15 Mar all 5,000 expire: breakage 5,000, balance 0."""
    from billing.models_credits import CreditBalanceTransaction, CreditGrant
    from revenue.selectors import revenue_report

    c = CreditGrant.objects.get(name="C")
    CreditBalanceTransaction.objects.create(
        stripe_id="cbtxn_c_back2", grant=c, account=credit_account, type="credit",
        kind="credits_application_invoice_voided", amount=1_000, currency="usd",
        effective_at=datetime(2026, 3, 2, tzinfo=UTC), invoice_id="in_feb",
        invoice_line_item_id="il_feb",
    )  # fmt: skip
    CreditBalanceTransaction.objects.filter(stripe_id="cbtxn_c_exp").update(amount=5_000)
    rows = revenue_report(account=credit_account, now=datetime(2026, 3, 20, tzinfo=UTC))
    feb, mar = rows.by_currency["usd"][1:]
    assert (feb.credits_consumed, feb.prepaid_credits_end) == (0, 5_000)
    assert (mar.breakage, mar.prepaid_credits_end) == (5_000, 0)
    assert all(j.balanced for j in journals(rows.by_currency["usd"]))
