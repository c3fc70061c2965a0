"""Credit notes (issue 15): on open and paid invoices, what they lower, and refusals."""

import pytest
import stripe

from tests.stripe_emulator.helpers import bill_one_period


def test_credit_note_on_an_open_invoice_lowers_what_is_due_and_a_full_one_pays_it(client):
    # No card: the renewal stays open. 10 + 20 = 30 units at 7¢ = 210¢.
    invoice, _ = bill_one_period(client, values=(10, 20), pm=None, unit_amount=7)
    assert (invoice.status, invoice.amount_due) == ("open", 210)
    [line] = client.v1.invoices.line_items.list(invoice.id).data
    # 10 of the line's 30 units, pro rata: 210 × 10 / 30 = 70¢.
    note = client.v1.credit_notes.create(
        {"invoice": invoice.id, "reason": "order_change", "memo": "double counted",
         "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id, "quantity": 10}]}
    )  # fmt: skip
    assert (note.amount, note.pre_payment_amount, note.post_payment_amount) == (70, 70, 0)
    assert (note.type, note.memo, note.lines.data[0].invoice_line_item) == (
        "pre_payment",
        "double counted",
        line.id,
    )
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.amount_due, invoice.pre_payment_credit_notes_amount) == (140, 70)
    # More than is left to credit (210 − 70 = 140¢) is refused.
    with pytest.raises(stripe.InvalidRequestError, match="at most what is left"):
        client.v1.credit_notes.create({"invoice": invoice.id, "amount": 141})
    client.v1.credit_notes.create(
        {"invoice": invoice.id,
         "lines": [{"type": "custom_line_item", "unit_amount": 70, "quantity": 2}]}
    )  # fmt: skip
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"  # credited to zero
    notes = client.v1.credit_notes.list({"invoice": invoice.id}).data
    assert sorted(n.amount for n in notes) == [70, 140]


def test_credit_note_on_a_paid_invoice_must_place_the_amount(client):
    invoice, _ = bill_one_period(client, values=(30,), unit_amount=7)  # 210¢, charged
    assert invoice.status == "paid"
    with pytest.raises(stripe.InvalidRequestError, match="post-payment amount"):
        client.v1.credit_notes.create({"invoice": invoice.id, "amount": 50})
    note = client.v1.credit_notes.create({"invoice": invoice.id, "amount": 50, "credit_amount": 50})
    assert (note.type, note.post_payment_amount) == ("post_payment", 50)
    assert client.v1.customers.retrieve(invoice.customer).balance == -50  # credit
    with pytest.raises(stripe.InvalidRequestError, match="reason"):
        client.v1.credit_notes.create(
            {"invoice": invoice.id, "amount": 1, "credit_amount": 1, "reason": "whim"}
        )
