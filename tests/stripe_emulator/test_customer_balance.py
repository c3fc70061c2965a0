"""The customer's balance applied to the next invoice at finalization
(stripe_emulator.customer_balance): a downgrade now leaves a credit; the next invoice
finalized starts from it (``starting_balance``), its amount due is lowered, and what is
left is its ``ending_balance`` and the customer's new balance; each move is an
``applied_to_invoice`` customer balance transaction.

A monthly period from 2026-04-01 00:00 UTC is 30 days (2,592,000 s); Apr 16 00:00 leaves
15 of them: every proration below is x 15/30 = x 1/2, exact in cents."""

from .helpers import advance, clock_customer, product, renewal_invoice

APR_1 = 1775001600  # 2026-04-01T00:00:00Z
APR_16 = APR_1 + 15 * 86400
MAY_1 = APR_1 + 30 * 86400
HOUR = 3600


def _licensed(client, amount: int, name: str):
    return client.v1.prices.create(
        {
            "product": product(client, name).id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
        }
    )


def _downgraded(client, to_amount: int):
    """On $99.00 from Apr 1; on Apr 16 moved now (``always_invoice``) to ``to_amount``."""
    clock, customer = clock_customer(client, frozen=APR_1)
    pro = _licensed(client, 9900, "Pro")
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": pro.id}]})
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    # The first invoice: nothing on the balance before or after.
    assert (first.total, first.amount_due, first.starting_balance, first.ending_balance) == (
        9900, 9900, 0, 0,
    )  # fmt: skip
    small = _licensed(client, to_amount, "Small")
    advance(client, clock.id, APR_16)
    item = sub["items"].data[0]
    updated = client.v1.subscriptions.update(
        sub.id,
        {
            "items": [{"id": item.id, "price": small.id}],
            "proration_behavior": "always_invoice",
            "proration_date": APR_16,
        },
    )
    return clock, customer, sub, client.v1.invoices.retrieve(updated.latest_invoice)


def _transactions(client, customer_id: str) -> list[tuple]:
    page = client.v1.customers.balance_transactions.list(customer_id)
    return [(t.type, t.amount, t.ending_balance, t.invoice) for t in page.data]


def test_a_downgrade_credit_larger_than_the_next_invoice_carries_over(client):
    clock, customer, sub, downgrade = _downgraded(client, 1000)
    # Unused Pro: -9,900 x 1/2 = -4,950; the rest of April on $10: 1,000 x 1/2 = 500.
    # Total -4,450: nothing due, the credit goes to the balance: 0 + (-4,450) = -4,450.
    assert (downgrade.total, downgrade.amount_due, downgrade.status) == (-4450, 0, "paid")
    assert (downgrade.starting_balance, downgrade.ending_balance) == (0, -4450)
    assert client.v1.customers.retrieve(customer.id).balance == -4450

    # The renewal previewed: $10.00 in advance for May; the credit covers it all.
    preview = client.v1.invoices.create_preview({"subscription": sub.id})
    assert (preview.total, preview.starting_balance, preview.ending_balance) == (1000, -4450, None)
    assert preview.amount_due == 0  # max(0, 1,000 - 4,450)
    assert client.v1.customers.retrieve(customer.id).balance == -4450  # a preview moves nothing

    advance(client, clock.id, MAY_1 + HOUR + 1)  # past the hour the renewal stays a draft
    renewal = renewal_invoice(client, sub.id)
    # 1,000 - 4,450 = -3,450: nothing due, -3,450 left for later invoices.
    assert (renewal.total, renewal.amount_due, renewal.amount_paid, renewal.status) == (
        1000, 0, 0, "paid",
    )  # fmt: skip
    assert (renewal.starting_balance, renewal.ending_balance) == (-4450, -3450)
    assert client.v1.customers.retrieve(customer.id).balance == -3450
    # Newest first: the renewal used 1,000 of the credit (+1,000, a debit to the balance);
    # the downgrade's invoice put -4,450 on it.
    assert _transactions(client, customer.id) == [
        ("applied_to_invoice", 1000, -3450, renewal.id),
        ("applied_to_invoice", -4450, -4450, downgrade.id),
    ]


def test_a_credit_smaller_than_the_next_invoice_lowers_what_is_charged(client):
    clock, customer, sub, downgrade = _downgraded(client, 5000)
    # -9,900 x 1/2 + 5,000 x 1/2 = -4,950 + 2,500 = -2,450 to the balance.
    assert (downgrade.total, downgrade.amount_due, downgrade.ending_balance) == (-2450, 0, -2450)
    advance(client, clock.id, MAY_1 + HOUR + 1)
    renewal = renewal_invoice(client, sub.id)
    # $50.00 for May less the 2,450 credit: 5,000 - 2,450 = 2,550 charged to the card;
    # the balance is used up.
    assert (renewal.total, renewal.amount_due, renewal.amount_paid, renewal.status) == (
        5000, 2550, 2550, "paid",
    )  # fmt: skip
    assert (renewal.starting_balance, renewal.ending_balance) == (-2450, 0)
    assert client.v1.customers.retrieve(customer.id).balance == 0
    assert _transactions(client, customer.id) == [
        ("applied_to_invoice", 2450, 0, renewal.id),
        ("applied_to_invoice", -2450, -2450, downgrade.id),
    ]


def test_an_invoice_with_nothing_to_apply_leaves_no_transaction(client):
    _clock, customer = clock_customer(client, frozen=APR_1)
    price = _licensed(client, 1000, "Basic")
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (first.amount_due, first.starting_balance, first.ending_balance) == (1000, 0, 0)
    assert _transactions(client, customer.id) == []
