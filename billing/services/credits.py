"""Billing credits: Meterdesk's side of Stripe's credit grants (what staff, the
customer's top-up page and automatic top-ups call).

Sources: [BC] https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits,
[API-CG] https://docs.stripe.com/api/billing/credit-grant/create (and ``/expire``,
``/void``).

- :func:`credit_grant_create` records a grant in one transaction (promotional:
  ``pending``; paid: ``awaiting_payment``) and queues its Stripe calls for after the
  commit (``billing.services.credit_stripe``: the purchase invoice for a paid grant, then
  the Stripe grant). Refused input raises :class:`CreditError` naming the field, and
  writes nothing; :func:`credit_grant_validate` is the same check alone.
- :func:`credit_grant_expire` and :func:`credit_grant_void` call Stripe at once (staff
  actions) and record the result.
- The retry and periodic pass (:func:`credit_grant_retry`,
  :func:`credit_grants_advance_stale`) and the transaction mirror
  (``billing.services.credit_sync``) live beside this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import stripe
from django.db import transaction
from django.utils import timezone

from billing.mirror.credit_shapes import grant_from_stripe
from billing.mirror.customers import live_customer_id_for_account
from billing.mirror.prices import price_uses
from billing.models import Account, CreditGrant, PlanPrice
from billing.money import format_money
from billing.services.credit_stripe import (  # noqa: F401  (the public API, re-exported)
    credit_grant_advance,
    credit_grant_queue,
    credit_grant_retry,
    credit_grants_advance_stale,
    stripe_client_or,
    stripe_error_text,
)

Status = CreditGrant.Status
Category = CreditGrant.Category

AMOUNT_CAP = 10**12  # minor units: anything larger is a typo
MAX_PRICES = 20  # [API-CG] applicability_config.scope.prices: "Limit 20 prices."


class CreditError(ValueError):
    """A refused credit operation: ``code`` (stable), ``field`` (the input at fault)."""

    def __init__(self, code: str, field: str, message: str):
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


@dataclass(frozen=True)
class ValidGrant:
    customer_id: str
    currency: str
    purchase_amount: int | None
    price_ids: list[str]


def _positive_amount(value, field: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < AMOUNT_CAP:
        raise CreditError(
            f"invalid_{field}",
            field,
            f"{what} must be a whole number of minor units above 0 and below {AMOUNT_CAP:,}.",
        )
    return value


def _aware(value, field: str) -> None:
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise CreditError(f"invalid_{field}", field, "Give a date and time with a time zone.")


def _check_prices(price_ids: Iterable[str], currency: str) -> list[str]:
    ids = list(dict.fromkeys(p.strip() for p in price_ids if p and p.strip()))
    if len(ids) > MAX_PRICES:
        raise CreditError("too_many_prices", "price_ids", f"At most {MAX_PRICES} prices.")
    if not ids:
        return ids
    # [API-CG] "We currently only support `metered` prices that have a Billing Meter
    # attached to them": a catalog price with a meter, in the grant's currency.
    uses = price_uses(price_ids=ids)
    known = dict(
        PlanPrice.objects.filter(stripe_price_id__in=ids).values_list("stripe_price_id", "currency")
    )
    for price_id in ids:
        use = uses.get(price_id)
        if price_id not in known or use is None or not use.is_metered or use.meter is None:
            raise CreditError(
                "unknown_price", "price_ids", f"{price_id} is not a metered price of the catalog."
            )
        if known[price_id] != currency:
            raise CreditError(
                "unknown_price",
                "price_ids",
                f"{price_id} is priced in {known[price_id].upper()}, not {currency.upper()}.",
            )
    return ids


def credit_grant_validate(
    *,
    account: Account,
    name: str,
    category: str,
    amount: int,
    currency: str | None = None,
    price_ids: Iterable[str] = (),
    priority: int = 50,
    effective_at: datetime | None = None,
    expires_at: datetime | None = None,
    purchase_amount: int | None = None,
    now: datetime | None = None,
) -> ValidGrant:
    """Check a grant's input without writing anything; raises :class:`CreditError`
    naming the field at fault. (The admin form calls it to show the error in place.)"""
    now = now or timezone.now()
    customer_id = live_customer_id_for_account(account=account)
    if not customer_id:
        raise CreditError("no_stripe_customer", "account", f"{account} has no Stripe customer yet.")
    if not (name or "").strip() or len(name) > 100:
        raise CreditError("invalid_name", "name", "Give a name of 1 to 100 characters.")
    if category not in Category.values:
        raise CreditError("invalid_category", "category", "Category is paid or promotional.")
    _positive_amount(amount, "amount", "The amount")
    currency = (currency or account.currency).lower()
    # [BC] a grant applies only when "The credit grant's currency matches the invoice
    # currency": the account is invoiced in its own currency only.
    if currency != account.currency:
        raise CreditError(
            "currency_mismatch",
            "currency",
            f"{account} is billed in {account.currency.upper()}, not {currency.upper()}.",
        )
    if category == Category.PAID:
        purchase_amount = amount if purchase_amount is None else purchase_amount
        _positive_amount(purchase_amount, "purchase_amount", "The purchase amount")
    elif purchase_amount is not None:
        raise CreditError(
            "invalid_purchase_amount", "purchase_amount", "Promotional credits are free."
        )
    # [API-CG] "The highest priority is 0 and the lowest is 100."
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
        raise CreditError("invalid_priority", "priority", "Priority is 0 (first) to 100 (last).")
    _aware(effective_at, "effective_at")
    _aware(expires_at, "expires_at")
    if expires_at is not None and expires_at <= (effective_at or now):
        raise CreditError(
            "expires_before_effective",
            "expires_at",
            "The expiry must be after the date the credits take effect.",
        )
    return ValidGrant(
        customer_id=customer_id,
        currency=currency,
        purchase_amount=purchase_amount,
        price_ids=_check_prices(price_ids, currency),
    )


def credit_grant_create(
    *,
    account: Account,
    name: str,
    category: str,
    amount: int,
    currency: str | None = None,
    price_ids: Iterable[str] = (),
    priority: int = 50,
    effective_at: datetime | None = None,
    expires_at: datetime | None = None,
    source: str = CreditGrant.Source.STAFF,
    purchase_amount: int | None = None,
    created_by=None,
) -> CreditGrant:
    """Record a grant (promotional: ``pending``; paid: ``awaiting_payment``) and queue
    its Stripe calls for after the commit. Refused input raises :class:`CreditError`
    and writes nothing."""
    valid = credit_grant_validate(
        account=account,
        name=name,
        category=category,
        amount=amount,
        currency=currency,
        price_ids=price_ids,
        priority=priority,
        effective_at=effective_at,
        expires_at=expires_at,
        purchase_amount=purchase_amount,
    )
    with transaction.atomic():
        grant = CreditGrant.objects.create(
            account=account,
            name=name.strip(),
            category=category,
            source=source,
            status=Status.AWAITING_PAYMENT if category == Category.PAID else Status.PENDING,
            amount=amount,
            currency=valid.currency,
            purchase_amount=valid.purchase_amount,
            price_ids=valid.price_ids,
            priority=priority,
            effective_at=effective_at,
            expires_at=expires_at,
            created_by=created_by,
        )
        credit_grant_queue(grant_id=grant.pk)
    return grant


# --- expire and void --------------------------------------------------------------


def _live_in_stripe(grant: CreditGrant) -> None:
    if grant.status != Status.ACTIVE or not grant.stripe_id or grant.voided_at is not None:
        raise CreditError(
            "not_active", "grant", f"{grant.name} is {grant.get_status_display().lower()}."
        )


def credit_grant_expire(
    *, grant: CreditGrant, at: datetime | None = None, client=None
) -> CreditGrant:
    """Expire the grant's remaining credits now (Stripe's ``/expire``), or at ``at``
    (``expires_at`` updated: [API-CG] update takes only ``expires_at`` and
    ``metadata``). https://docs.stripe.com/api/billing/credit-grant/expire"""
    from billing.services.credit_sync import credit_transactions_queue

    _live_in_stripe(grant)
    now = timezone.now()
    _aware(at, "at")
    if grant.expires_at is not None and grant.expires_at <= now:
        raise CreditError("already_expired", "grant", f"{grant.name} has expired already.")
    client = stripe_client_or(client)
    try:
        if at is None or at <= now:
            remote = client.v1.billing.credit_grants.expire(
                grant.stripe_id,
                {},
                {"idempotency_key": f"meterdesk-credit-grant-{grant.pk}-expire"},
            )
        else:
            stamp = int(at.timestamp())
            remote = client.v1.billing.credit_grants.update(
                grant.stripe_id,
                {"expires_at": stamp},
                {"idempotency_key": f"meterdesk-credit-grant-{grant.pk}-expires-{stamp}"},
            )
    except stripe.StripeError as exc:
        raise CreditError("stripe_error", "grant", stripe_error_text(exc)) from exc
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        locked.expires_at = grant_from_stripe(remote).expires_at or at or now
        locked.save(update_fields=["expires_at", "updated_at"])
        credit_transactions_queue(account_id=locked.account_id)
    return locked


def credit_grant_void(*, grant: CreditGrant, client=None) -> CreditGrant:
    """Void a grant none of which was applied ([BC] "You can only void credit grants
    that you haven't applied to an invoice, either partially or completely"); refused
    with ``grant_used`` otherwise (expire it instead). The grant's transactions are read
    from Stripe first, so the check does not depend on a webhook having arrived.
    https://docs.stripe.com/api/billing/credit-grant/void"""
    from billing.mirror.credits import grant_balance
    from billing.services.credit_sync import credit_transactions_sync

    _live_in_stripe(grant)
    client = stripe_client_or(client)
    try:
        credit_transactions_sync(account=grant.account, grant=grant, client=client)
    except stripe.StripeError as exc:
        raise CreditError("stripe_error", "grant", stripe_error_text(exc)) from exc
    applied = grant_balance(grant=grant).applied
    if applied:
        raise CreditError(
            "grant_used",
            "grant",
            f"{format_money(applied, grant.currency)} of {grant.name} was applied to "
            "invoices: it cannot be voided. Expire it instead.",
        )
    try:
        remote = client.v1.billing.credit_grants.void_grant(
            grant.stripe_id, {}, {"idempotency_key": f"meterdesk-credit-grant-{grant.pk}-void"}
        )
    except stripe.StripeError as exc:
        raise CreditError("stripe_error", "grant", stripe_error_text(exc)) from exc
    with transaction.atomic():
        locked = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        locked.status = Status.VOIDED
        locked.voided_at = grant_from_stripe(remote).voided_at or timezone.now()
        locked.save(update_fields=["status", "voided_at", "updated_at"])
    return locked
