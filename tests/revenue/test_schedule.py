"""Acceptance 1: revenue schedules worked out by hand, and the rounding rule.

Rounding rule: each UTC day gets the floor of its exact share (amount × day weight /
total weight, in Decimal), and the minor units left over go on the period's last day.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from revenue.schedule import (
    RevenueLine,
    allocate,
    line_schedule,
    schedule_by_month,
    service_days,
    spread_over_lines,
)
from revenue.waterfall import journals, waterfall

JAN_15 = datetime(2026, 1, 15, tzinfo=UTC)
FEB_15 = datetime(2026, 2, 15, tzinfo=UTC)


def line(amount, start=JAN_15, end=FEB_15, *, billed_on=date(2026, 1, 15), **kw) -> RevenueLine:
    return RevenueLine(
        invoice_id=kw.pop("invoice_id", "in_1"),
        line_id=kw.pop("line_id", "il_1"),
        currency=kw.pop("currency", "usd"),
        amount=amount,
        period_start=start,
        period_end=end,
        billed_on=billed_on,
        **kw,
    )


def test_99_dollars_from_15_january_to_15_february():
    """$99.00 = 9,900 cents over 15 Jan 00:00 UTC .. 15 Feb 00:00 UTC: 31 whole days
    (15..31 Jan is 17 days, 1..14 Feb is 14 days), each weighing 86,400 seconds.

    Earned by the end of day k: floor(9,900 × k / 31); each day the difference.
    Day 1: floor(319.35) = 319. Day 2: floor(638.71) − 319 = 319. Day 4: floor(1,277.42)
    − floor(958.06) = 1,277 − 958 = 319 ... (days earn 319 or 320).
    January, by 31 Jan (k = 17): floor(9,900 × 17 / 31) = floor(5,429.03) = 5,429
        (17/31 of $99 to the cent).
    February: 9,900 − 5,429 = 4,471 (14/31 is 4,470.96...).
    Last day, 14 Feb: 9,900 − floor(9,900 × 30 / 31) = 9,900 − floor(9,580.64) = 320,
        the remaining minor unit(s) on the period's last day.
    """
    schedule = line_schedule(line(9900))
    assert len(schedule) == 31
    assert schedule[0].day == date(2026, 1, 15) and schedule[-1].day == date(2026, 2, 14)
    assert schedule[0].amount == 319
    assert schedule[-1].amount == 320
    assert {d.amount for d in schedule} == {319, 320}
    assert schedule_by_month(schedule) == {"2026-01": 5429, "2026-02": 4471}
    assert sum(d.amount for d in schedule) == 9900


def test_usage_three_quarters_in_the_first_half_one_quarter_in_the_second():
    """$100.00 of usage over 1 Apr .. 1 May (30 days): 30 units a day on days 1-15
    (450) and 10 a day on days 16-30 (150), so 450 : 150 = 3 : 1 of 600 units.

    By the end of day 15: 10,000 × 450 / 600 = 7,500 exactly (3/4); days 1-15 earn 500.
    Day 16: floor(10,000 × 460 / 600) − 7,500 = floor(7,666.67) − 7,500 = 166;
    day 17: floor(7,833.33) − 7,666 = 167; the rest of the second half alternates so that
    days 16-30 earn 10,000 − 7,500 = 2,500 (1/4); the last day earns
    10,000 − floor(10,000 × 590 / 600) = 10,000 − 9,833 = 167.
    """
    start = datetime(2026, 4, 1, tzinfo=UTC)
    usage = {date(2026, 4, d): (30 if d <= 15 else 10) for d in range(1, 31)}
    usage_line = line(10_000, start, start + timedelta(days=30), kind="metered", usage_by_day=usage)
    schedule = line_schedule(usage_line)
    first = sum(d.amount for d in schedule if d.day.day <= 15)
    second = sum(d.amount for d in schedule if d.day.day > 15)
    assert (first, second) == (7500, 2500)
    assert [d.amount for d in schedule[:15]] == [500] * 15
    assert schedule[15].amount == 166 and schedule[16].amount == 167
    assert schedule[-1].amount == 167


def test_metered_line_without_usage_detail_is_ratable():
    start = datetime(2026, 4, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    assert line_schedule(line(3000, start, end, kind="metered", usage_by_day={})) == (
        line_schedule(line(3000, start, end, kind="licensed"))
    )
    # usage recorded only outside the period counts as none
    outside = {date(2026, 3, 31): 5}
    assert [d.amount for d in line_schedule(line(3000, start, end, kind="metered",
                                                 usage_by_day=outside))] == [100] * 30  # fmt: skip


def test_partial_days_weigh_their_seconds():
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)  # noon to noon two days later
    days = service_days(start, start + timedelta(days=2))
    assert days == [(date(2026, 1, 1), 43200), (date(2026, 1, 2), 86400), (date(2026, 1, 3), 43200)]
    assert [d.amount for d in line_schedule(line(1000, start, start + timedelta(days=2)))] == [
        250,
        500,
        250,
    ]


def test_empty_period_is_earned_on_its_day():
    moment = datetime(2026, 3, 3, 15, tzinfo=UTC)
    assert [(d.day, d.amount) for d in line_schedule(line(500, moment, moment))] == [
        (date(2026, 3, 3), 500)
    ]


def test_negative_amounts_mirror_positive_ones():
    assert allocate(-9900, [1] * 31) == [-x for x in allocate(9900, [1] * 31)]
    assert allocate(100, [1, 1, 1]) == [33, 33, 34]
    assert allocate(-100, [1, 1, 1]) == [-33, -33, -34]
    assert allocate(7, [0, 0]) == [3, 4]  # no weight at all: evenly


def test_spread_discount_over_lines():
    # a 1,000 invoice-level discount over lines of 9,900 and 100: floor, remainder last
    assert spread_over_lines(-1000, [9900, 100]) == [-990, -10]
    assert spread_over_lines(-1000, [9900, 0, 100]) == [-990, 0, -10]


def test_allocate_refuses_floats():
    with pytest.raises(TypeError):
        allocate(99.0, [1])


def test_metered_usage_billed_in_arrears_is_unbilled_until_invoiced():
    """January usage invoiced on 1 Feb: January revenue, carried as unbilled receivable,
    moved against deferred revenue when the invoice is finalized in February."""
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    usage = line(3100, jan, jan + timedelta(days=31), billed_on=date(2026, 2, 1), kind="metered")
    fee = line(9900, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC),
               billed_on=date(2026, 2, 1), line_id="il_2")  # fmt: skip
    [(currency, rows)] = waterfall(lines=[usage, fee]).items()
    assert currency == "usd"
    jan_fig, feb_fig = rows
    assert (jan_fig.billed, jan_fig.recognized, jan_fig.deferred_end, jan_fig.unbilled_end) == (
        0, 3100, 0, 3100,
    )  # fmt: skip
    assert (feb_fig.billed, feb_fig.recognized, feb_fig.deferred_end, feb_fig.unbilled_end) == (
        13000, 9900, 0, 0,
    )  # fmt: skip
    jan_journal, feb_journal = journals(rows)
    assert jan_journal.balanced and feb_journal.balanced
    assert [(e.debit, e.credit, e.amount) for e in feb_journal.entries] == [
        ("Accounts receivable", "Deferred revenue", 13000),
        ("Deferred revenue", "Unbilled receivables", 3100),
        ("Deferred revenue", "Revenue", 9900),
    ]


def test_currencies_never_add_up():
    rows = waterfall(
        lines=[line(9900), line(5000, currency="eur", line_id="il_e"), line(800, currency="jpy")]
    )
    assert sorted(rows) == ["eur", "jpy", "usd"]
    assert [sum(f.billed for f in rows[c]) for c in ("eur", "jpy", "usd")] == [5000, 800, 9900]


def test_a_fee_billed_in_advance_is_not_recognized_in_months_not_reached():
    """Issue 14, item 10: the renewal on 15 Jan bills Pro's $99 for 15 Jan .. 15 Feb in
    advance. As of 20 Jan only 15..20 Jan (6 of 31 days) are earned; the rest is deferred
    and February (a month still to come) shows no row at all.

    By the end of 20 Jan: floor(9,900 × 6 / 31) = floor(1,916.13) = 1,916 recognized;
    deferred 9,900 − 1,916 = 7,984. (Before the fix January showed 5,429 — all 17 January
    days — and a February row recognized the other 4,471.)
    """
    fee = line(9900)  # JAN_15 .. FEB_15, billed 15 Jan
    [jan] = waterfall(lines=[fee], as_of=date(2026, 1, 20))["usd"]
    assert (jan.month, jan.billed, jan.recognized, jan.deferred_end) == (
        "2026-01",
        9900,
        1916,
        7984,
    )
    assert journals([jan])[0].balanced
    # As of 3 Feb: January's 17 days (5,429) and 1..3 Feb: floor(9,900 × 20 / 31) =
    # floor(6,387.10) = 6,387, so February has earned 6,387 − 5,429 = 958 so far.
    jan, feb = waterfall(lines=[fee], as_of=date(2026, 2, 3))["usd"]
    assert (jan.recognized, feb.recognized, feb.deferred_end) == (5429, 958, 9900 - 6387)
    # Once the period is over, the whole line is earned: as before.
    jan, feb = waterfall(lines=[fee], as_of=date(2026, 3, 1))["usd"]
    assert (jan.recognized, feb.recognized, feb.deferred_end) == (5429, 4471, 0)
