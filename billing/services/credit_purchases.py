"""The purchase of a paid grant: a one-off invoice, charged to the customer's default
payment method; the grant goes to Stripe only once this invoice is paid.

Steps, each safe to repeat (:func:`credit_purchase_advance`):

1. the invoice (``POST /v1/invoices``, key ``meterdesk-credit-purchase-<pk>-invoice``,
   ``metadata[meterdesk_credit_grant]=<pk>``, ``collection_method=charge_automatically``,
   ``auto_advance=false`` so nothing happens to it but these steps; a repeat within a
   day is replayed by the key, later the invoice is looked for by its metadata); its id
   is recorded at once, so the ``invoice.paid`` webhook finds the grant;
2. its one line (``POST /v1/invoiceitems`` with ``invoice=<id>``, key ``...-item``): the
   item is attached to this invoice, never left pending where the customer's next
   subscription invoice would pick it up;
3. finalize (key ``...-finalize``) and pay (``POST /v1/invoices/{id}/pay``, the default
   payment method). A declined card leaves the grant ``awaiting_payment`` with the
   decline in ``last_error``: the customer can pay the invoice's hosted page, and the
   ``invoice.paid`` webhook (or the periodic check) completes the grant.

Then the invoice's status decides: ``paid`` -> ``pending`` (the Stripe grant is created
next); ``void`` or ``uncollectible`` -> ``canceled``. An uncollectible invoice can still
be paid later ([INV] https://docs.stripe.com/invoicing/overview#invoice-statuses): a
canceled grant whose invoice is then paid is completed.

Sources: https://docs.stripe.com/api/invoices/create, https://docs.stripe.com/api/invoiceitems/create
(``invoice``: "The ID of an existing invoice to add this invoice item to"),
https://docs.stripe.com/api/invoices/finalize, https://docs.stripe.com/api/invoices/pay.
"""

from __future__ import annotations

from datetime import timedelta

import stripe
from django.db import transaction
from django.utils import timezone

from billing.mirror.credit_shapes import PURCHASE_METADATA_KEY, as_dict, invoice_from_stripe
from billing.mirror.customers import live_customer_id_for_account
from billing.models import CreditGrant
from billing.services.credit_stripe import credit_grant_record_failure

Status = CreditGrant.Status
DESCRIPTION = "Prepaid usage credits"
# Stripe keeps an idempotency key "for at least 24 hours"
# (https://docs.stripe.com/api/idempotent_requests); an hour's margin.
KEY_KEPT = timedelta(hours=23)


def _key(grant: CreditGrant, step: str) -> dict:
    return {"idempotency_key": f"meterdesk-credit-purchase-{grant.pk}-{step}"}


def _find_invoice(client, customer_id: str, grant: CreditGrant):
    page = client.v1.invoices.list({"customer": customer_id, "limit": 100})
    for invoice in page.auto_paging_iter():
        if invoice_from_stripe(invoice).grant_pk == str(grant.pk):
            return invoice
    return None


def _invoice(client, customer_id: str, grant: CreditGrant):
    if grant.purchase_invoice_id:
        return client.v1.invoices.retrieve(grant.purchase_invoice_id)
    # Within a day of the first attempt the idempotency key replays the invoice made
    # then; after that Stripe has forgotten the key, so an earlier invoice is looked for
    # by its metadata (one list of the customer's invoices, only then).
    made_before = grant.created_at <= timezone.now() - KEY_KEPT
    invoice = _find_invoice(client, customer_id, grant) if made_before else None
    if invoice is None:
        created = client.v1.invoices.create(
            {
                "customer": customer_id,
                "currency": grant.currency,
                "collection_method": "charge_automatically",
                "auto_advance": False,
                "description": DESCRIPTION,
                "metadata": {PURCHASE_METADATA_KEY: str(grant.pk)},
            },
            _key(grant, "invoice"),
        )
        # A replayed create answers with the invoice as it was then (a draft without
        # lines, though it may be paid by now): its state is read afresh.
        invoice = client.v1.invoices.retrieve(created.id)
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if not locked.purchase_invoice_id:
            locked.purchase_invoice_id = invoice.id
            locked.save(update_fields=["purchase_invoice_id", "updated_at"])
    grant.purchase_invoice_id = invoice.id
    return invoice


def _has_lines(invoice) -> bool:
    lines = as_dict(invoice).get("lines") or {}
    return bool(lines.get("total_count") or lines.get("data"))


def _charge(client, customer_id: str, grant: CreditGrant, attempt_payment: bool):
    """Steps 1-3; returns the invoice as Stripe has it after them."""
    invoice = _invoice(client, customer_id, grant)
    if invoice.status == "draft":
        if not _has_lines(invoice):
            client.v1.invoice_items.create(
                {
                    "customer": customer_id,
                    "invoice": invoice.id,
                    "amount": grant.purchase_amount,
                    "currency": grant.currency,
                    "description": DESCRIPTION,
                    "metadata": {PURCHASE_METADATA_KEY: str(grant.pk)},
                },
                _key(grant, "item"),
            )
        invoice = client.v1.invoices.finalize_invoice(
            invoice.id, {"auto_advance": False}, _key(grant, "finalize")
        )
        attempt_payment = True  # just finalized: its first charge
    if invoice.status == "open" and attempt_payment:
        try:
            # No idempotency key of our own: a declined charge must be retryable with
            # the same request once the customer has a working card.
            invoice = client.v1.invoices.pay(invoice.id)
        except stripe.CardError as exc:
            _record(grant, last_error=exc.user_message or str(exc))
            invoice = client.v1.invoices.retrieve(invoice.id)
        except stripe.InvalidRequestError:
            # Paid meanwhile (the customer on the hosted page, a concurrent attempt):
            # what counts is its state now.
            invoice = client.v1.invoices.retrieve(invoice.id)
            if invoice.status == "open":
                raise
    return invoice


def _record(grant: CreditGrant, *, status: str | None = None, last_error: str | None = None):
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if status is not None:
            locked.status = status
        if last_error is not None:
            locked.last_error = last_error[:2000]
        locked.save(update_fields=["status", "last_error", "updated_at"])
    for field in ("status", "last_error", "purchase_invoice_id"):
        setattr(grant, field, getattr(locked, field))
    return locked


def credit_purchase_advance(
    *, grant: CreditGrant, client, attempt_payment: bool = False
) -> CreditGrant:
    """Move a paid grant's purchase on (see the module doc). Returns the grant:
    ``pending`` once its invoice is paid (the caller then creates the Stripe grant)."""
    customer_id = live_customer_id_for_account(account=grant.account)
    if not customer_id:
        return _record(
            grant, status=Status.FAILED, last_error="The account has no Stripe customer."
        )
    try:
        if grant.status == Status.CANCELED:
            if not grant.purchase_invoice_id:
                return grant
            invoice = client.v1.invoices.retrieve(grant.purchase_invoice_id)
        else:
            invoice = _charge(client, customer_id, grant, attempt_payment)
    except stripe.StripeError as exc:
        return credit_grant_record_failure(grant=grant, exc=exc)
    status = invoice_from_stripe(invoice).status
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if locked.status in (Status.AWAITING_PAYMENT, Status.CANCELED, Status.FAILED):
            if status == "paid":
                locked.status, locked.last_error = Status.PENDING, ""
            elif status in ("void", "uncollectible") and locked.status != Status.CANCELED:
                locked.status = Status.CANCELED
                locked.last_error = f"The purchase invoice is {status}."
            locked.save(update_fields=["status", "last_error", "updated_at"])
    return CreditGrant.objects.select_related("account").get(pk=grant.pk)
