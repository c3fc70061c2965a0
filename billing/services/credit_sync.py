"""Credit balance transactions mirrored from Stripe, and the invoice events that move
credits.

:func:`credit_transactions_sync` lists the customer's ``billing.credit_balance_transaction``
objects (``GET /v1/billing/credit_balance_transactions``, every page,
https://docs.stripe.com/api/billing/credit-balance-transaction/list) and stores the ones
not seen yet (Stripe's ledger is append-only, [BC]); it also brings the customer's grants'
``expires_at`` / ``voided_at`` up to date (``GET /v1/billing/credit_grants``), so a grant
expired or voided in the Dashboard shows here. It runs after ``invoice.finalized`` and
``invoice.voided`` for an account with grants (credits are applied at finalization and
given back when an invoice is voided, [BC]), and every 15 minutes for every account with
a grant in Stripe.

:func:`credit_invoice_event_record` is what the thin webhook receiver calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from billing.mirror.credit_shapes import event_invoice, grant_from_stripe, transaction_from_stripe
from billing.mirror.customers import account_for_customer_id, live_customer_id_for_account
from billing.models import Account, CreditBalanceTransaction, CreditGrant

log = logging.getLogger(__name__)
Status = CreditGrant.Status

PURCHASE_EVENTS = {"invoice.paid", "invoice.voided", "invoice.marked_uncollectible"}
SYNC_EVENTS = {"invoice.finalized", "invoice.voided"}
CREDIT_INVOICE_EVENTS = sorted(PURCHASE_EVENTS | SYNC_EVENTS)


def _client(client):
    from billing.stripe_api import stripe_client

    return client or stripe_client()


def _sync_grants(client, customer_id: str, grants: dict[str, CreditGrant]) -> None:
    page = client.v1.billing.credit_grants.list({"customer": customer_id, "limit": 100})
    for remote in page.auto_paging_iter():
        shape = grant_from_stripe(remote)
        grant = grants.get(shape.id)
        if grant is None:
            continue
        changes = {}
        if shape.expires_at != grant.expires_at:
            changes["expires_at"] = shape.expires_at
        if shape.voided_at is not None and grant.status != Status.VOIDED:
            changes.update(status=Status.VOIDED, voided_at=shape.voided_at)
        if changes:
            CreditGrant.objects.filter(pk=grant.pk).update(**changes)


def credit_transactions_sync(
    *, account: Account, grant: CreditGrant | None = None, client=None
) -> int:
    """Mirror the account's credit balance transactions (only ``grant``'s when given);
    returns how many were new. Transactions of grants Meterdesk did not make are
    skipped. Stripe errors are raised."""
    customer_id = live_customer_id_for_account(account=account)
    if not customer_id:
        return 0
    client = _client(client)
    grants = {
        g.stripe_id: g for g in CreditGrant.objects.filter(account=account).exclude(stripe_id="")
    }
    if not grants:
        return 0
    params: dict[str, Any] = {"customer": customer_id, "limit": 100}
    if grant is not None:
        params["credit_grant"] = grant.stripe_id
    seen = [
        transaction_from_stripe(remote)
        for remote in client.v1.billing.credit_balance_transactions.list(params).auto_paging_iter()
    ]
    if grant is None:
        _sync_grants(client, customer_id, grants)
    known = set(
        CreditBalanceTransaction.objects.filter(stripe_id__in=[s.id for s in seen]).values_list(
            "stripe_id", flat=True
        )
    )
    new = [
        CreditBalanceTransaction(
            stripe_id=s.id,
            grant=grants[s.grant_id],
            account=account,
            type=s.type,
            kind=s.kind,
            amount=s.amount,
            currency=s.currency or grants[s.grant_id].currency,
            effective_at=s.effective_at,
            invoice_id=s.invoice_id,
            invoice_line_item_id=s.invoice_line_item_id,
        )
        for s in seen
        if s.id not in known and s.grant_id in grants and s.type in ("credit", "debit")
    ]
    CreditBalanceTransaction.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def credit_transactions_sync_all(*, client=None) -> int:
    """The periodic sync: every account with a grant in Stripe. Returns how many
    transactions were new; one account's failure does not stop the others."""
    account_ids = (
        CreditGrant.objects.exclude(stripe_id="").values_list("account_id", flat=True).distinct()
    )
    new = 0
    for account in Account.objects.filter(pk__in=list(account_ids)).order_by("pk"):
        try:
            new += credit_transactions_sync(account=account, client=client)
        except Exception:
            log.exception("credit transactions of account %s: sync failed", account.pk)
    return new


def credit_transactions_queue(*, account_id: int) -> None:
    """Sync the account's transactions in a task once the transaction commits."""
    transaction.on_commit(lambda: credit_transactions_publish(account_id=account_id))


def credit_transactions_publish(*, account_id: int) -> bool:
    from billing.tasks import sync_credit_transactions

    try:
        sync_credit_transactions.apply_async(args=[account_id], retry=False)
    except Exception:  # a broker error: the 15-minute sync catches up
        log.warning("credit sync of account %s waits for beat", account_id, exc_info=True)
        return False
    return True


def credit_invoice_event_record(*, event_type: str, event_data: Mapping[str, Any]) -> None:
    """Inside the webhook's transaction: queue what an invoice event means for credits.
    A purchase invoice paid, voided or uncollectible moves its grant
    (``billing.services.credit_stripe.credit_grant_advance``); an invoice finalized or voided
    for an account with grants in Stripe re-syncs its transactions. Both tasks run after
    the commit; a lost one is caught up by the periodic passes."""
    from billing.services.credit_stripe import credit_grant_queue

    invoice = event_invoice(event_data)
    if invoice is None:
        return
    if event_type in PURCHASE_EVENTS:
        grants = CreditGrant.objects.filter(purchase_invoice_id=invoice.id)
        if invoice.grant_pk.isdigit():
            grants = grants | CreditGrant.objects.filter(
                pk=int(invoice.grant_pk), category=CreditGrant.Category.PAID
            )
        for grant_id in grants.values_list("pk", flat=True).distinct():
            credit_grant_queue(grant_id=grant_id)
    if event_type in SYNC_EVENTS:
        account = account_for_customer_id(customer_id=invoice.customer_id)
        has_grants = (
            account is not None
            and CreditGrant.objects.filter(account=account).exclude(stripe_id="").exists()
        )
        if has_grants:
            credit_transactions_queue(account_id=account.pk)
