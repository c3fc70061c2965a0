"""The read API's invoice pages (``GET /api/v1/customers/{customer}/invoices``) with more
invoices than one page: the pages are complete, disjoint and in order (newest first;
invoices of the same second in Stripe id order, descending), and the database pages
(``billing.mirror.invoices.account_invoices`` sends LIMIT/OFFSET: one page and one row
more, never every earlier row).

Twelve one-off invoices on a test clock, four at each of three instants, so each page
boundary falls inside a group of invoices created in the same second. Invoice ``n``
(1-12) has one item of ``n`` x 100¢, so its total is ``n`` x 100¢: every row on a page is
told apart by its amount too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.mirror.customers import customer_id_for_account
from billing.services.accounts import account_create, account_ensure_stripe_customer
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.test_clocks import test_clock_advance
from tests.usage.test_read_api import INVOICES, assert_documented, get, read_key  # noqa: F401

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 9, 1, tzinfo=UTC)
INSTANTS = (T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
PER_INSTANT = 4


@pytest.fixture
def twelve_invoices(stripe_client):
    clock = stripe_client.v1.test_helpers.test_clocks.create({"frozen_time": int(T0.timestamp())})
    account = account_create(name="Hooli", billing_email="ap@hooli.example")
    account_ensure_stripe_customer(account=account, test_clock=clock.id)
    customer = customer_id_for_account(account=account)
    made = []  # (created, id, total) as Stripe answered
    n = 0
    for instant in INSTANTS:
        if instant != T0:
            test_clock_advance(client=stripe_client, clock_id=clock.id, to=instant)
        for _ in range(PER_INSTANT):
            n += 1
            stripe_client.v1.invoice_items.create(
                {"customer": customer, "amount": n * 100, "currency": "usd"}
            )
            invoice = stripe_client.v1.invoices.create(
                {"customer": customer, "pending_invoice_items_behavior": "include"}
            )
            assert (invoice.created, invoice.total) == (int(instant.timestamp()), n * 100)
            made.append((invoice.created, invoice.id, invoice.total))
    assert not stripe_sync_everything().errors
    return customer, made


def test_invoice_pages_are_complete_disjoint_and_ordered(twelve_invoices, read_key):  # noqa: F811
    customer, made = twelve_invoices
    # Newest first; within a second, the larger Stripe id first.
    expected = [i for _, i, _ in sorted(made, key=lambda m: (m[0], m[1]), reverse=True)]
    totals = {i: total for _, i, total in made}

    pages, offset = [], 0
    while offset is not None:
        with CaptureQueriesContext(connection) as queries:
            response = get(INVOICES, read_key, customer, limit="5", offset=str(offset))
        body = assert_documented(response, INVOICES)
        pages.append(body)
        # The database pages: one page and the row that tells there is more.
        invoice_sql = [q["sql"] for q in queries if 'FROM "djstripe_invoice"' in q["sql"]]
        paging = f"LIMIT 6 OFFSET {offset}" if offset else "LIMIT 6"
        assert len(invoice_sql) == 1 and invoice_sql[0].endswith(paging)
        offset = body["next_offset"]

    # 12 invoices, 5 a page: 5 + 5 + 2.
    assert [len(p["data"]) for p in pages] == [5, 5, 2]
    assert [(p["offset"], p["has_more"], p["next_offset"]) for p in pages] == [
        (0, True, 5), (5, True, 10), (10, False, None),
    ]  # fmt: skip
    ids = [row["id"] for p in pages for row in p["data"]]
    assert len(set(ids)) == len(ids) == 12  # disjoint and complete
    assert ids == expected  # ordered, across the page boundaries inside a second
    created = [row["created"] for p in pages for row in p["data"]]
    assert created == sorted(created, reverse=True)
    # Page 1: the four of 02:00 (invoices 12..9) and one of 01:00; the amounts say which.
    assert created[:5] == ["2026-09-01T02:00:00Z"] * 4 + ["2026-09-01T01:00:00Z"]
    assert [row["total"] for p in pages for row in p["data"]] == [totals[i] for i in ids]
    assert sorted(row["total"] for p in pages for row in p["data"]) == [
        n * 100 for n in range(1, 13)
    ]
    # Every page is what one whole answer would have cut out.
    whole = get(INVOICES, read_key, customer, limit="100").json()
    assert [row["id"] for row in whole["data"]] == ids
    assert (whole["has_more"], whole["next_offset"]) == (False, None)
    past = assert_documented(get(INVOICES, read_key, customer, offset="12"), INVOICES)
    assert (past["data"], past["has_more"], past["next_offset"]) == ([], False, None)
