"""Acceptance 2: property tests over generated Stripe-shaped invoices.

For every generated set of finalized invoices (licensed and metered lines, line and
invoice-level discounts, credit notes, lines billed in advance or in arrears, several
currencies) and open-period accruals:

- each line's recognized days add up to the line's net amount exactly, and the lines
  of an invoice to its amount net of discounts and credit notes;
- the deferred balance (and the unbilled balance) is never negative at any month end;
- every month's journal balances and ties out to the waterfall.
"""

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.mirror.invoices import invoice_from_stripe
from revenue.invoices import invoice_revenue_lines
from revenue.schedule import line_schedule, service_days
from revenue.waterfall import Accrual, journals, waterfall

DAY = 86400
LO = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp())
HI = int(datetime(2027, 6, 1, tzinfo=UTC).timestamp())


@st.composite
def stripe_lines(draw, finalized_at: int):
    n = draw(st.integers(1, 5))
    lines = []
    for i in range(n):
        # in arrears (period before the invoice), in advance (after), or around it
        start = finalized_at + draw(st.integers(-70 * DAY, 10 * DAY))
        length = draw(st.one_of(st.just(0), st.integers(1, 400 * DAY)))
        amount = draw(st.one_of(st.integers(0, 100_000_00), st.integers(0, 10**13)))
        discount = draw(st.one_of(st.just(0), st.integers(0, amount)))
        metered = draw(st.booleans())
        usage = {}
        if metered:
            days = service_days(
                datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + length, UTC)
            )
            picked = draw(st.lists(st.sampled_from([d for d, _ in days]), max_size=12))
            usage = {d: draw(st.integers(0, 10**9)) for d in picked}
        lines.append(
            {
                "id": f"il_{i}",
                "amount": amount,
                "discount_amounts": [{"amount": discount, "discount": "di_1"}] if discount else [],
                "period": {"start": start, "end": start + length},
                "_kind": "metered" if metered else "licensed",
                "_usage": usage,
            }
        )
    return lines


@st.composite
def invoices(draw):
    finalized_at = draw(st.integers(LO, HI))
    lines = draw(stripe_lines(finalized_at))
    line_discounts = sum(d["amount"] for line in lines for d in line["discount_amounts"])
    net = sum(line["amount"] for line in lines) - line_discounts
    extra_discount = draw(st.integers(0, net))
    credit_pre = draw(st.integers(0, net - extra_discount))
    credit_post = draw(st.integers(0, net - extra_discount - credit_pre))
    data = {
        "id": f"in_{finalized_at}",
        "status": draw(st.sampled_from(["open", "paid", "uncollectible"])),
        "currency": draw(st.sampled_from(["usd", "eur", "jpy"])),
        "status_transitions": {"finalized_at": finalized_at},
        "created": finalized_at,
        "total_discount_amounts": [{"amount": line_discounts + extra_discount}],
        "pre_payment_credit_notes_amount": credit_pre,
        "post_payment_credit_notes_amount": credit_post,
    }
    return data, lines


def _revenue_lines_of(data, lines):
    """The invoice's revenue lines, each classified as generated (``_kind``, ``_usage``)."""
    generated = {line["id"]: (line["_kind"], line["_usage"]) for line in lines}

    def classify(line, start, end):
        return generated[line.id]

    return invoice_revenue_lines(invoice_from_stripe(data, lines=lines), classify=classify)


@st.composite
def accruals(draw):
    start = draw(st.integers(LO, HI))
    days = service_days(
        datetime.fromtimestamp(start, UTC),
        datetime.fromtimestamp(start + draw(st.integers(1, 35 * DAY)), UTC),
    )
    weights = tuple((d, draw(st.integers(0, 10**6))) for d, _ in days)
    return Accrual(
        currency=draw(st.sampled_from(["usd", "eur"])),
        amount=draw(st.integers(0, 10**9)),
        weights=weights,
    )


def _revenue_lines(generated):
    return [line for data, lines in generated for line in _revenue_lines_of(data, lines)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(invoices(), min_size=1, max_size=4))
def test_recognized_amounts_sum_to_each_line_exactly(generated):
    for data, lines in generated:
        revenue_lines = _revenue_lines_of(data, lines)
        expected_total = (
            sum(line["amount"] for line in lines)
            - data["total_discount_amounts"][0]["amount"]
            - data["pre_payment_credit_notes_amount"]
            - data["post_payment_credit_notes_amount"]
        )
        assert sum(line.amount for line in revenue_lines) == expected_total
        for line in revenue_lines:
            schedule = line_schedule(line)
            assert sum(day.amount for day in schedule) == line.amount
            assert all(day.amount >= 0 for day in schedule)  # net amounts are >= 0
            days = [day.day for day in schedule]
            assert days == sorted(set(days))
            assert days[0] == line.period_start.date()
            last = max(line.period_start, line.period_end - timedelta(microseconds=1))
            assert days[-1] == last.date()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(invoices(), min_size=1, max_size=5), st.lists(accruals(), max_size=3))
def test_deferred_never_negative_and_every_journal_balances(generated, open_accruals):
    lines = _revenue_lines(generated)
    rows_by_currency = waterfall(lines=lines, accruals=open_accruals)
    for currency, rows in rows_by_currency.items():
        months = [fig.month for fig in rows]
        assert months == sorted(months) and len(set(months)) == len(months)
        for fig in rows:
            assert fig.deferred_end >= 0, (currency, fig)
            assert fig.unbilled_end >= 0, (currency, fig)
        for journal in journals(rows):
            assert journal.balanced, journal.problems
            assert journal.total_debits == journal.total_credits
        billed = sum(line.amount for line in lines if line.currency == currency)
        accrued = sum(a.amount for a in open_accruals if a.currency == currency)
        assert sum(fig.billed for fig in rows) == billed
        assert sum(fig.revenue for fig in rows) == billed + accrued
        # by the last month everything invoiced is earned; what is left unbilled is
        # exactly the open-period estimate
        assert rows[-1].deferred_end == 0
        assert rows[-1].unbilled_end == accrued


def test_a_month_with_nothing_billed_or_earned_still_balances():
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    data = {
        "id": "in_1",
        "currency": "usd",
        "status_transitions": {"finalized_at": int(jan.timestamp())},
    }
    lines = [{"id": "il_1", "amount": 1200, "period": {"start": int(jan.timestamp()),
              "end": int((jan + timedelta(days=31)).timestamp())}}]  # fmt: skip
    later = [
        {
            **lines[0],
            "id": "il_2",
            "period": {
                "start": int(datetime(2026, 4, 1, tzinfo=UTC).timestamp()),
                "end": int(datetime(2026, 5, 1, tzinfo=UTC).timestamp()),
            },
        }
    ]
    rows = waterfall(lines=invoice_revenue_lines(invoice_from_stripe(data, lines=lines + later)))[
        "usd"
    ]
    assert [f.month for f in rows] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert [f.deferred_end for f in rows] == [1200, 1200, 1200, 0]
    assert rows[1].revenue == 0 and all(j.balanced for j in journals(rows))
