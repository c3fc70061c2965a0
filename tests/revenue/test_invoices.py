"""Invoice lines netted of discounts and credit notes, worked out by hand."""

from datetime import UTC, date, datetime

from billing.mirror.invoices import invoice_from_stripe
from revenue.invoices import invoice_revenue_lines

JAN_1 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
FEB_1 = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())


def test_line_discounts_invoice_discounts_and_credit_notes():
    """Lines of 9,900 (with a 990 line discount) and 1,000; 300 more of invoice-level
    discount and a 500 credit note.

    Net after line discounts: 8,910 and 1,000 (9,910).
    Invoice-level 300 by cumulative floors: floor(300 × 8,910 / 9,910) = 269 on the
    first line, 300 − 269 = 31 on the second -> 8,641 and 969 (9,610).
    Credit note 500: floor(500 × 8,641 / 9,610) = 449, then 500 − 449 = 51
    -> 8,192 and 918 (9,110 = 10,900 − 990 − 300 − 500).
    """
    data = {
        "id": "in_1",
        "currency": "usd",
        "status": "paid",
        "status_transitions": {"finalized_at": JAN_1 + 3600},
        "total_discount_amounts": [{"amount": 990}, {"amount": 300}],
        "pre_payment_credit_notes_amount": 200,
        "post_payment_credit_notes_amount": 300,
    }
    lines = [
        {"id": "il_a", "amount": 9900, "discount_amounts": [{"amount": 990}],
         "period": {"start": JAN_1, "end": FEB_1}},
        {"id": "il_b", "amount": 1000, "discount_amounts": [],
         "period": {"start": JAN_1, "end": FEB_1}},
    ]  # fmt: skip
    a, b = invoice_revenue_lines(invoice_from_stripe(data, lines=lines), account_id=7)
    assert (a.amount, b.amount) == (8192, 918)
    assert (a.gross, a.discount, b.gross, b.discount) == (9900, -1708, 1000, -82)
    assert a.billed_on == date(2026, 1, 1) and a.account_id == 7 and a.currency == "usd"


def test_a_zero_line_is_never_reduced():
    data = {"id": "in_2", "currency": "eur", "created": JAN_1,
            "total_discount_amounts": [{"amount": 1}]}  # fmt: skip
    lines = [
        {"id": "il_a", "amount": 1, "period": {"start": JAN_1, "end": FEB_1}},
        {"id": "il_b", "amount": 0, "period": {"start": JAN_1, "end": FEB_1}},
    ]
    assert [
        line.amount for line in invoice_revenue_lines(invoice_from_stripe(data, lines=lines))
    ] == [0, 0]
