"""Billing credits applied to an invoice's lines: cases worked out by hand.

Amounts are in cents (usd minor units). Every expected figure is worked in the
comment next to it from Stripe's rules (billing/pricing/credits.py cites them).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import (
    CreditApplication,
    CreditGrantSpec,
    LineItem,
    apply_credits,
    credit_order,
    eligible_grants,
)

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)  # the invoice's period_end
MAR_1 = datetime(2026, 3, 1, tzinfo=UTC)
DEC_1 = datetime(2025, 12, 1, tzinfo=UTC)


def line(
    amount: int,
    *,
    price_id: str = "price_calls",
    kind: str = "metered",
    currency: str = "usd",
) -> LineItem:
    return LineItem(
        price_id=price_id,
        description=f"{price_id} line",
        quantity=1,
        amount=amount,
        currency=currency,
        period_start=JAN_1,
        period_end=FEB_1,
        kind=kind,  # type: ignore[arg-type]
        amount_decimal=Decimal(amount),
    )


def grant(
    grant_id: str,
    balance: int,
    *,
    category: str = "paid",
    priority: int = 50,
    currency: str = "usd",
    created: datetime = DEC_1,
    effective_at: datetime | None = None,
    expires_at: datetime | None = None,
    price_ids: frozenset[str] = frozenset(),
) -> CreditGrantSpec:
    return CreditGrantSpec(
        id=grant_id,
        currency=currency,
        category=category,  # type: ignore[arg-type]
        balance=balance,
        created=created,
        priority=priority,
        effective_at=effective_at,
        expires_at=expires_at,
        price_ids=price_ids,
    )


def applied(result) -> list[tuple[str, int, int]]:
    return [(a.grant_id, a.line_index, a.amount) for a in result.applications]


# -- the headline case: $100 paid + $20 promotional against $150 of usage -----


@pytest.mark.parametrize(
    ("paid_priority", "promo_priority", "first"),
    [(10, 50, "paid"), (50, 10, "promo"), (50, 50, "promo")],
)
def test_100_paid_and_20_promotional_against_150_leaves_30(paid_priority, promo_priority, first):
    paid = grant("paid", 10_000, priority=paid_priority)
    promo = grant("promo", 2_000, category="promotional", priority=promo_priority)
    result = apply_credits(lines=[line(15_000)], grants=[paid, promo], period_end=FEB_1)
    # 15,000 - (10,000 + 2,000) = 3,000: both grants are used up whatever the order
    assert (result.subtotal, result.credited, result.total) == (15_000, 12_000, 3_000)
    assert result.remaining == {"paid": 0, "promo": 0}
    assert result.line_credits() == (12_000,)
    # the order shows in the applications: the higher priority (lower number) first;
    # at equal priority promotional goes first
    if first == "paid":
        assert applied(result) == [("paid", 0, 10_000), ("promo", 0, 2_000)]
    else:
        assert applied(result) == [("promo", 0, 2_000), ("paid", 0, 10_000)]


def test_priority_decides_which_grant_is_left_over_paid_first():
    # $110 line, paid priority 10 goes first: paid 10,000, then promo 11,000 - 10,000 =
    # 1,000 of its 2,000 -> promo left with 2,000 - 1,000 = 1,000, total 0
    paid = grant("paid", 10_000, priority=10)
    promo = grant("promo", 2_000, category="promotional", priority=50)
    result = apply_credits(lines=[line(11_000)], grants=[promo, paid], period_end=FEB_1)
    assert applied(result) == [("paid", 0, 10_000), ("promo", 0, 1_000)]
    assert result.remaining == {"paid": 0, "promo": 1_000}
    assert (result.credited, result.total) == (11_000, 0)


def test_priority_decides_which_grant_is_left_over_promotional_first():
    # $110 line, promo priority 10 goes first: promo 2,000, then paid 11,000 - 2,000 =
    # 9,000 of its 10,000 -> paid left with 10,000 - 9,000 = 1,000, total 0
    paid = grant("paid", 10_000, priority=50)
    promo = grant("promo", 2_000, category="promotional", priority=10)
    result = apply_credits(lines=[line(11_000)], grants=[paid, promo], period_end=FEB_1)
    assert applied(result) == [("promo", 0, 2_000), ("paid", 0, 9_000)]
    assert result.remaining == {"paid": 1_000, "promo": 0}
    assert (result.credited, result.total) == (11_000, 0)


def test_equal_priority_promotional_first_even_if_paid_is_older():
    # paid created a month earlier, but category comes before created in Stripe's order:
    # $50 line, promo 2,000 first, then paid 5,000 - 2,000 = 3,000 -> paid left 7,000
    paid = grant("paid", 10_000, created=DEC_1 - timedelta(days=30))
    promo = grant("promo", 2_000, category="promotional", created=DEC_1)
    result = apply_credits(lines=[line(5_000)], grants=[paid, promo], period_end=FEB_1)
    assert applied(result) == [("promo", 0, 2_000), ("paid", 0, 3_000)]
    assert result.remaining == {"paid": 7_000, "promo": 0}
    assert result.total == 0  # 5,000 - 5,000


# -- order among grants ---------------------------------------------------------


def test_credit_order_follows_stripes_list_then_id():
    grants = [
        grant("g_no_expiry", 1),  # priority 50, never expires: after expiring ones
        grant("g_late_expiry", 1, expires_at=datetime(2026, 6, 1, tzinfo=UTC)),
        grant("g_early_expiry", 1, expires_at=MAR_1),
        grant("g_prio_0", 1, priority=0),  # highest priority wins over everything
        grant("g_promo", 1, category="promotional"),  # no expiry, promotional
        grant("g_eff_late", 1, effective_at=JAN_1),  # no expiry, paid, effective later
        grant("g_b", 1, created=DEC_1 + timedelta(hours=1)),  # created later than g_a
        grant("g_a", 1, created=DEC_1 + timedelta(hours=1)),  # same as g_b: id breaks the tie
        grant("g_prio_100", 1, priority=100),  # lowest priority: last
    ]
    assert [g.id for g in credit_order(grants)] == [
        "g_prio_0",
        "g_early_expiry",  # expires 2026-03-01
        "g_late_expiry",  # expires 2026-06-01
        "g_promo",  # no expiry: promotional before paid
        "g_no_expiry",  # paid, effective (created) 2025-12-01 00:00
        "g_a",  # paid, effective (created) 2025-12-01 01:00, id a < b
        "g_b",
        "g_eff_late",  # paid, effective 2026-01-01
        "g_prio_100",
    ]


def test_expires_at_comes_before_category():
    # both priority 50: the paid grant expires (March), the promotional one never does;
    # expiry is Stripe's 2nd key, category the 3rd -> paid first.
    # $30 line: paid 2,000, then promo 3,000 - 2,000 = 1,000 -> promo left 4,000
    paid = grant("paid", 2_000, expires_at=MAR_1)
    promo = grant("promo", 5_000, category="promotional")
    result = apply_credits(lines=[line(3_000)], grants=[promo, paid], period_end=FEB_1)
    assert applied(result) == [("paid", 0, 2_000), ("promo", 0, 1_000)]
    assert result.remaining == {"paid": 0, "promo": 4_000}


def test_effective_at_earlier_first_when_all_else_ties():
    # both paid, priority 50, no expiry; "late" was created first but is effective later
    early = grant("early", 1_000, created=DEC_1 + timedelta(days=2), effective_at=DEC_1)
    late = grant("late", 1_000, created=DEC_1, effective_at=JAN_1)
    assert [g.id for g in credit_order([late, early])] == ["early", "late"]


# -- eligibility ---------------------------------------------------------------


def test_grant_expiring_before_period_end_is_not_applied():
    # expires mid-January, the invoice's period ends Feb 1: not eligible although
    # the usage happened while it was live -> nothing credited, total 15,000
    gone = grant("gone", 10_000, expires_at=datetime(2026, 1, 15, tzinfo=UTC))
    result = apply_credits(lines=[line(15_000)], grants=[gone], period_end=FEB_1)
    assert result.applications == ()
    assert (result.credited, result.total) == (0, 15_000)
    assert result.remaining == {"gone": 10_000}


def test_grant_expiring_exactly_at_period_end_is_not_applied():
    # "period_end occurs before expires_at" is strict: expires_at == period_end fails
    assert (
        eligible_grants(
            grants=[grant("g", 100, expires_at=FEB_1)], currency="usd", period_end=FEB_1
        )
        == []
    )
    # one second later it is eligible
    later = grant("g", 100, expires_at=FEB_1 + timedelta(seconds=1))
    assert eligible_grants(grants=[later], currency="usd", period_end=FEB_1) == [later]


def test_grant_effective_after_period_end_is_not_applied():
    future = grant("future", 10_000, effective_at=FEB_1 + timedelta(seconds=1))
    result = apply_credits(lines=[line(15_000)], grants=[future], period_end=FEB_1)
    assert (result.credited, result.total) == (0, 15_000)
    assert result.remaining == {"future": 10_000}


def test_grant_effective_at_period_end_or_mid_period_pays_the_whole_period():
    # effective_at <= period_end is enough, even if the grant started mid-period:
    # $150 line, 10,000 + 2,000 = 12,000 credited -> 3,000
    at_end = grant("at_end", 10_000, effective_at=FEB_1)
    mid = grant("mid", 2_000, effective_at=datetime(2026, 1, 20, tzinfo=UTC))
    result = apply_credits(lines=[line(15_000)], grants=[at_end, mid], period_end=FEB_1)
    # both paid, priority 50, no expiry: mid (effective Jan 20) before at_end (Feb 1)
    assert applied(result) == [("mid", 0, 2_000), ("at_end", 0, 10_000)]
    assert result.total == 3_000


def test_effective_at_none_means_created():
    created_later = grant("g", 500, created=FEB_1 + timedelta(days=1))
    assert eligible_grants(grants=[created_later], currency="usd", period_end=FEB_1) == []
    created_before = grant("g", 500, created=JAN_1)
    assert eligible_grants(grants=[created_before], currency="usd", period_end=FEB_1) == [
        created_before
    ]


def test_currency_mismatch_is_excluded():
    eur = grant("eur", 10_000, currency="eur")
    usd = grant("usd", 1_000)
    result = apply_credits(lines=[line(15_000)], grants=[eur, usd], period_end=FEB_1)
    # only the usd grant: 15,000 - 1,000 = 14,000
    assert applied(result) == [("usd", 0, 1_000)]
    assert result.total == 14_000
    assert result.remaining == {"eur": 10_000, "usd": 0}


def test_zero_balance_grant_is_skipped():
    empty = grant("empty", 0, priority=0)
    full = grant("full", 1_000)
    result = apply_credits(lines=[line(5_000)], grants=[empty, full], period_end=FEB_1)
    # no zero application for "empty"; 5,000 - 1,000 = 4,000
    assert applied(result) == [("full", 0, 1_000)]
    assert result.total == 4_000
    assert eligible_grants(grants=[empty], currency="usd", period_end=FEB_1) == []


# -- which lines ---------------------------------------------------------------


def test_price_restricted_grant_only_credits_its_price():
    # lines: calls $150 (metered), storage $40 (metered); the grant is for storage only
    storage_only = grant("storage", 10_000, price_ids=frozenset({"price_storage"}))
    lines = [line(15_000, price_id="price_calls"), line(4_000, price_id="price_storage")]
    result = apply_credits(lines=lines, grants=[storage_only], period_end=FEB_1)
    # only the storage line: min(10,000, 4,000) = 4,000; calls untouched
    assert result.applications == (
        CreditApplication(grant_id="storage", line_index=1, price_id="price_storage", amount=4_000),
    )
    assert result.line_credits() == (0, 4_000)
    # 19,000 - 4,000 = 15,000; grant left 10,000 - 4,000 = 6,000
    assert (result.subtotal, result.total) == (19_000, 15_000)
    assert result.remaining == {"storage": 6_000}


def test_restricted_grant_first_then_general_grant_covers_the_rest():
    # priority 0 grant for calls only, priority 50 grant for any metered price
    calls_only = grant("calls", 1_000, priority=0, price_ids=frozenset({"price_calls"}))
    general = grant("general", 5_000)
    lines = [line(3_000, price_id="price_calls"), line(4_000, price_id="price_storage")]
    result = apply_credits(lines=lines, grants=[general, calls_only], period_end=FEB_1)
    # calls 3,000: calls 1,000 then general 2,000; storage 4,000: general 5,000 - 2,000 =
    # 3,000 left -> 3,000; total 7,000 - 6,000 = 1,000
    assert applied(result) == [("calls", 0, 1_000), ("general", 0, 2_000), ("general", 1, 3_000)]
    assert result.line_credits() == (3_000, 3_000)
    assert result.total == 1_000


def test_licensed_line_is_untouched():
    # $99 base fee (licensed) and $20 of usage (metered): a $200 grant only covers the usage
    lines = [line(9_900, price_id="price_base", kind="licensed"), line(2_000)]
    result = apply_credits(lines=lines, grants=[grant("g", 20_000)], period_end=FEB_1)
    assert applied(result) == [("g", 1, 2_000)]
    # 11,900 - 2,000 = 9,900; grant left 20,000 - 2,000 = 18,000
    assert (result.subtotal, result.credited, result.total) == (11_900, 2_000, 9_900)
    assert result.remaining == {"g": 18_000}


def test_licensed_price_in_scope_is_still_not_credited():
    scoped = grant("g", 20_000, price_ids=frozenset({"price_base"}))
    result = apply_credits(
        lines=[line(9_900, price_id="price_base", kind="licensed")],
        grants=[scoped],
        period_end=FEB_1,
    )
    assert (result.credited, result.total) == (0, 9_900)


def test_several_lines_in_invoice_order():
    # one $50 grant, three metered lines of $30, $40, $10:
    # line 0 takes 3,000 (left 2,000), line 1 takes 2,000 (left 0), line 2 nothing
    lines = [
        line(3_000, price_id="price_a"),
        line(4_000, price_id="price_b"),
        line(1_000, price_id="price_c"),
    ]
    result = apply_credits(lines=lines, grants=[grant("g", 5_000)], period_end=FEB_1)
    assert applied(result) == [("g", 0, 3_000), ("g", 1, 2_000)]
    assert result.line_credits() == (3_000, 2_000, 0)
    # 8,000 - 5,000 = 3,000
    assert (result.subtotal, result.credited, result.total) == (8_000, 5_000, 3_000)


def test_each_line_drains_grants_in_order_before_the_next_line():
    # promo $10 and paid $100 (equal priority: promo first); lines $5 and $20:
    # line 0: promo 500 (promo left 500); line 1: promo 500, then paid 1,500
    promo = grant("promo", 1_000, category="promotional")
    paid = grant("paid", 10_000)
    result = apply_credits(lines=[line(500), line(2_000)], grants=[paid, promo], period_end=FEB_1)
    assert applied(result) == [("promo", 0, 500), ("promo", 1, 500), ("paid", 1, 1_500)]
    # paid left 10,000 - 1,500 = 8,500; total 2,500 - 2,500 = 0
    assert result.remaining == {"promo": 0, "paid": 8_500}
    assert result.total == 0


def test_zero_and_negative_lines_are_not_credited():
    # a zero usage line and a negative metered adjustment take nothing
    result = apply_credits(
        lines=[line(0), line(-300), line(700)], grants=[grant("g", 1_000)], period_end=FEB_1
    )
    assert applied(result) == [("g", 2, 700)]
    # subtotal 0 - 300 + 700 = 400; total 400 - 700 = -300 (the negative line stays)
    assert (result.subtotal, result.credited, result.total) == (400, 700, -300)


def test_no_lines_no_grants():
    result = apply_credits(lines=[], grants=[grant("g", 1_000)], period_end=FEB_1)
    assert (result.subtotal, result.credited, result.total) == (0, 0, 0)
    assert result.remaining == {"g": 1_000}
    assert apply_credits(lines=[line(100)], grants=[], period_end=FEB_1).total == 100


# -- validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"id": ""}, ValueError, "id must be a non-empty str"),
        ({"currency": "USD"}, ValueError, "lowercase ISO code"),
        ({"currency": 840}, TypeError, "currency must be a str"),
        ({"category": "bonus"}, ValueError, "category must be 'paid' or 'promotional'"),
        ({"balance": -1}, ValueError, "balance must be >= 0"),
        ({"balance": 1.5}, TypeError, "balance must be an int"),
        ({"balance": True}, TypeError, "balance must be an int"),
        ({"priority": 101}, ValueError, "priority must be between 0 and 100"),
        ({"priority": -1}, ValueError, "priority must be between 0 and 100"),
        ({"created": "2026-01-01"}, TypeError, "created must be a datetime"),
        ({"created": datetime(2026, 1, 1)}, ValueError, "created must be timezone-aware"),
        ({"expires_at": datetime(2026, 1, 1)}, ValueError, "expires_at must be timezone-aware"),
        ({"effective_at": 0}, TypeError, "effective_at must be a datetime or None"),
        ({"price_ids": {"price_a"}}, TypeError, "price_ids must be a frozenset"),
        ({"price_ids": frozenset({""})}, ValueError, "price_ids must hold non-empty str"),
    ],
)
def test_grant_spec_validation(changes, error, message):
    params = {
        "id": "g",
        "currency": "usd",
        "category": "paid",
        "balance": 100,
        "created": DEC_1,
        **changes,
    }
    with pytest.raises(error, match=message):
        CreditGrantSpec(**params)


def test_apply_credits_validation():
    with pytest.raises(ValueError, match="share one currency"):
        apply_credits(lines=[line(100), line(100, currency="eur")], grants=[], period_end=FEB_1)
    with pytest.raises(ValueError, match="given twice"):
        apply_credits(lines=[line(100)], grants=[grant("g", 1), grant("g", 2)], period_end=FEB_1)
    with pytest.raises(TypeError, match="grants must hold CreditGrantSpec"):
        apply_credits(lines=[line(100)], grants=[{"id": "g"}], period_end=FEB_1)
    with pytest.raises(TypeError, match="lines must hold LineItem"):
        apply_credits(lines=[15_000], grants=[], period_end=FEB_1)
    with pytest.raises(ValueError, match="period_end must be timezone-aware"):
        apply_credits(lines=[line(100)], grants=[], period_end=datetime(2026, 2, 1))
    with pytest.raises(ValueError, match="lowercase ISO code"):
        eligible_grants(grants=[], currency="USD", period_end=FEB_1)


# -- one cheap property ------------------------------------------------------------

grants_strategy = st.lists(
    st.builds(
        grant,
        st.sampled_from(["g1", "g2", "g3", "g4"]),
        st.integers(0, 5_000),
        category=st.sampled_from(["paid", "promotional"]),
        priority=st.integers(0, 100),
        price_ids=st.sampled_from([frozenset(), frozenset({"price_a"}), frozenset({"price_b"})]),
    ),
    max_size=4,
    unique_by=lambda g: g.id,
)
lines_strategy = st.lists(
    st.builds(
        line,
        st.integers(-500, 5_000),
        price_id=st.sampled_from(["price_a", "price_b"]),
        kind=st.sampled_from(["metered", "licensed"]),
    ),
    max_size=4,
)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(lines=lines_strategy, grants=grants_strategy)
def test_credits_are_conserved_and_never_push_a_line_below_zero(lines, grants):
    result = apply_credits(lines=lines, grants=grants, period_end=FEB_1)
    # what the grants lost is exactly what the invoice was credited
    assert sum(g.balance for g in grants) - sum(result.remaining.values()) == result.credited
    assert all(0 <= result.remaining[g.id] <= g.balance for g in grants)
    for index, (item, credit) in enumerate(zip(lines, result.line_credits(), strict=True)):
        assert 0 <= credit <= max(item.amount, 0), index
        if item.kind == "licensed":
            assert credit == 0
    assert result.total == result.subtotal - result.credited
