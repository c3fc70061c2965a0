"""A credit grant's Stripe calls, made after the grant is committed, never inside a
transaction: :func:`credit_grant_advance` (the Celery task ``advance_credit_grant`` runs
it with the grant's id) takes whatever step the grant is at, and is safe to run any
number of times, at once:

- promotional: ``pending`` -> the Stripe grant is created -> ``active`` (``stripe_id``);
- paid: ``awaiting_payment`` -> the purchase invoice
  (``billing.services.credit_purchases``); once it is paid -> ``pending`` -> the Stripe
  grant -> ``active``; its invoice voided or uncollectible -> ``canceled``.

Never granted twice: the Stripe grant is created with the idempotency key
``meterdesk-credit-grant-<pk>`` and ``metadata[meterdesk_grant]=<pk>``; every attempt
first looks for a grant with that metadata (Stripe keeps a key only 24 hours,
https://docs.stripe.com/api/idempotent_requests), and the outcome is recorded under
``select_for_update``: a grant Stripe made is recorded ``active`` whatever a concurrent
attempt recorded first.

Failures: Stripe refusing a request (4xx) makes the grant ``failed`` with ``last_error``;
staff retry it (:func:`credit_grant_retry`, the admin's Retry action) under the same keys.
A transient failure (no connection, 429, 5xx, a concurrent request with the same key)
leaves the grant where it was with ``last_error`` set, and the periodic pass
(:func:`credit_grants_advance_stale`) retries every grant left ``pending`` or
``awaiting_payment`` for ``STALE_AFTER``, which also covers a task lost with the broker
and a purchase invoice whose ``invoice.paid`` webhook never came.
https://docs.stripe.com/api/billing/credit-grant/create
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import stripe
from django.db import transaction
from django.utils import timezone

from billing.mirror.credit_shapes import GRANT_METADATA_KEY, grant_from_stripe
from billing.mirror.customers import live_customer_id_for_account
from billing.models import CreditGrant

log = logging.getLogger(__name__)
Status = CreditGrant.Status
Category = CreditGrant.Category

STALE_AFTER = timedelta(minutes=5)
TRANSIENT = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    stripe.IdempotencyError,
)


def credit_grant_queue(*, grant_id: int) -> None:
    """Queue :func:`credit_grant_advance` once the current transaction commits."""
    transaction.on_commit(lambda: credit_grant_publish(grant_id=grant_id))


def credit_grant_publish(*, grant_id: int) -> bool:
    """Publish the grant's task once; a broker error is logged, not raised (the periodic
    pass picks the grant up after ``STALE_AFTER``)."""
    from billing.tasks import advance_credit_grant

    try:
        advance_credit_grant.apply_async(args=[grant_id], retry=False)
    except Exception:  # kombu raises many kinds (OperationalError, ConnectionError, ...)
        log.warning("credit grant %s waits for the periodic pass", grant_id, exc_info=True)
        return False
    return True


def stripe_client_or(client):
    from billing.stripe_api import stripe_client

    return client or stripe_client()


def stripe_error_text(exc: stripe.StripeError) -> str:
    return (exc.user_message or str(exc) or type(exc).__name__)[:2000]


def credit_grant_record_failure(*, grant: CreditGrant, exc: stripe.StripeError) -> CreditGrant:
    """Record Stripe's refusal (``failed``) or a transient failure (status kept, retried
    by the periodic pass); a grant another attempt made active stays active."""
    message = stripe_error_text(exc)
    log.warning("credit grant %s: Stripe call failed: %s", grant.pk, message)
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if locked.status in (Status.PENDING, Status.AWAITING_PAYMENT):
            if not isinstance(exc, TRANSIENT):
                locked.status = Status.FAILED
            locked.last_error = message
            locked.save(update_fields=["status", "last_error", "updated_at"])
    return locked


def _stripe_params(grant: CreditGrant, customer_id: str) -> dict:
    if grant.price_ids:
        scope = {"prices": [{"id": price_id} for price_id in grant.price_ids]}
    else:
        scope = {"price_type": "metered"}
    params = {
        "customer": customer_id,
        "name": grant.name,
        "category": grant.category,
        "amount": {
            "type": "monetary",
            "monetary": {"currency": grant.currency, "value": grant.amount},
        },
        "applicability_config": {"scope": scope},
        "priority": grant.priority,
        "metadata": {GRANT_METADATA_KEY: str(grant.pk)},
    }
    if grant.effective_at is not None:
        params["effective_at"] = int(grant.effective_at.timestamp())
    if grant.expires_at is not None:
        params["expires_at"] = int(grant.expires_at.timestamp())
    return params


def _find_stripe_grant(client, customer_id: str, grant_pk: int):
    """The Stripe grant an earlier attempt made for this row, if any."""
    page = client.v1.billing.credit_grants.list({"customer": customer_id, "limit": 100})
    for remote in page.auto_paging_iter():
        if grant_from_stripe(remote).grant_pk == str(grant_pk):
            return remote
    return None


def _grant_in_stripe(grant: CreditGrant, client) -> CreditGrant:
    customer_id = live_customer_id_for_account(account=grant.account)
    if not customer_id:
        grant.last_error = "The account has no Stripe customer."
        grant.status = Status.FAILED
        grant.save(update_fields=["status", "last_error", "updated_at"])
        return grant
    try:
        remote = _find_stripe_grant(client, customer_id, grant.pk)
        if remote is None:
            # https://docs.stripe.com/api/billing/credit-grant/create
            remote = client.v1.billing.credit_grants.create(
                _stripe_params(grant, customer_id),
                {"idempotency_key": f"meterdesk-credit-grant-{grant.pk}"},
            )
    except stripe.StripeError as exc:
        return credit_grant_record_failure(grant=grant, exc=exc)
    made = grant_from_stripe(remote)
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if locked.status == Status.ACTIVE and locked.stripe_id == made.id:
            return locked  # another attempt recorded it first
        locked.status, locked.stripe_id, locked.last_error = Status.ACTIVE, made.id, ""
        # [API-CG] effective_at "defaults to the current timestamp if not specified".
        locked.effective_at = locked.effective_at or made.effective_at
        locked.save(
            update_fields=["status", "stripe_id", "last_error", "effective_at", "updated_at"]
        )
    return locked


def credit_grant_advance(
    *, grant_id: int, client=None, attempt_payment: bool = False
) -> CreditGrant:
    """Take the grant's next Stripe step(s); safe to run any number of times, at once.
    ``attempt_payment``: also charge an open purchase invoice again (staff's Retry)."""
    from billing.services.credit_purchases import credit_purchase_advance

    grant = CreditGrant.objects.select_related("account").get(pk=grant_id)
    if grant.status in (Status.AWAITING_PAYMENT, Status.CANCELED) and grant.category == "paid":
        grant = credit_purchase_advance(
            grant=grant, client=stripe_client_or(client), attempt_payment=attempt_payment
        )
    if grant.status == Status.PENDING:
        grant = _grant_in_stripe(grant, stripe_client_or(client))
    return grant


def credit_grant_retry(*, grant: CreditGrant, client=None) -> CreditGrant:
    """Staff: try a failed (or stuck) grant again under the same idempotency keys; a paid
    grant goes back to its purchase, whose invoice (if any) decides what comes next."""
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if locked.status == Status.FAILED:
            paid = locked.category == Category.PAID
            locked.status = Status.AWAITING_PAYMENT if paid else Status.PENDING
            locked.save(update_fields=["status", "updated_at"])
    return credit_grant_advance(grant_id=grant.pk, client=client, attempt_payment=True)


def credit_grants_advance_stale(*, client=None, now: datetime | None = None) -> int:
    """The periodic pass: every grant left ``pending`` or ``awaiting_payment`` for
    ``STALE_AFTER`` (its task was lost, Stripe was unreachable, or the purchase
    invoice's webhook never came). Returns how many are active after it."""
    now = now or timezone.now()
    stale = CreditGrant.objects.filter(
        status__in=[Status.PENDING, Status.AWAITING_PAYMENT], updated_at__lt=now - STALE_AFTER
    ).order_by("id")
    activated = 0
    for grant_id in stale.values_list("id", flat=True)[:500]:
        try:
            done = credit_grant_advance(grant_id=grant_id, client=client)
        except Exception:  # one broken grant never blocks the others
            log.exception("credit grant %s: periodic pass failed", grant_id)
            continue
        activated += done.status == Status.ACTIVE
    return activated
