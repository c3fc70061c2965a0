"""Reads: an account's credit grants with their balances, from Meterdesk's grant rows and
the credit balance transactions mirrored from Stripe (``billing.services.credit_sync``).

The read model other apps use: :func:`grant_balances` (the active grants of the
account's currency, each convertible to the pricing engine's ``CreditGrantSpec``) and
:func:`account_grants` (every grant, for pages). Both cost one query whatever the number
of grants and transactions.

Balance ([BC] https://docs.stripe.com/billing/subscriptions/usage-based/billing-credits:
"A credit grant is backed by an immutable, append-only ledger"; credits apply "only at
the time of finalization"): ``ledger_balance = amount - debits + credits``, where the
debits are every mirrored ``credits_applied`` / ``credits_expired`` / ``credits_voided``
and the credits are the reinstatements (``credits_application_invoice_voided``). Stripe's
own ``credits_granted`` credit is the grant's ``amount`` itself, so it is not counted a
second time. A grant past its ``expires_at`` or voided has 0 left, whatever the mirror
has seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Account, CreditGrant
from billing.pricing.credits import CreditGrantSpec

Status = CreditGrant.Status

GRANTED = "credits_granted"
APPLIED = "credits_applied"
EXPIRED = "credits_expired"
VOIDED = "credits_voided"
REINSTATED = "credits_application_invoice_voided"


@dataclass(frozen=True)
class GrantBalance:
    pk: int
    stripe_id: str
    account_id: int
    name: str
    category: str
    source: str
    status: str
    status_label: str
    amount: int  # granted, minor units of ``currency``
    currency: str
    purchase_amount: int | None
    purchase_invoice_id: str
    price_ids: frozenset[str]
    priority: int
    effective_at: datetime | None
    expires_at: datetime | None
    voided_at: datetime | None
    created_at: datetime
    last_error: str
    ledger_balance: int  # what is left to apply (0 once expired or voided)
    applied: int  # applied to finalized invoices, less what voided invoices gave back
    expired_amount: int  # expired (or voided) unused

    def to_spec(self) -> CreditGrantSpec:
        """The grant as the pricing engine applies it to a period's usage."""
        return CreditGrantSpec(
            id=self.stripe_id or f"meterdesk-grant-{self.pk}",
            currency=self.currency,
            category=self.category,
            balance=self.ledger_balance,
            created=self.created_at,
            priority=self.priority,
            effective_at=self.effective_at,
            expires_at=self.expires_at,
            price_ids=self.price_ids,
        )


def with_totals(queryset: QuerySet[CreditGrant]) -> QuerySet[CreditGrant]:
    """The grants with their mirrored transactions summed by kind, for
    :func:`balance_from` (one query; the admin's changelist uses it)."""

    def total(condition: Q):
        return Coalesce(Sum("transactions__amount", filter=condition), 0)

    debit = Q(transactions__type="debit")
    credit = Q(transactions__type="credit")
    return queryset.annotate(
        t_debited=total(debit),
        t_reinstated=total(credit & ~Q(transactions__kind=GRANTED)),
        t_applied=total(debit & Q(transactions__kind=APPLIED)),
        t_given_back=total(credit & Q(transactions__kind=REINSTATED)),
        t_expired=total(debit & Q(transactions__kind__in=[EXPIRED, VOIDED])),
    )


def _ended(grant: CreditGrant, now: datetime) -> bool:
    return (
        grant.status == Status.VOIDED
        or grant.voided_at is not None
        or (grant.expires_at is not None and grant.expires_at <= now)
    )


def _status_label(grant: CreditGrant, now: datetime, balance: int) -> str:
    if grant.status != Status.ACTIVE:
        return grant.get_status_display()
    if grant.voided_at is not None:
        return "Voided"
    if grant.expires_at is not None and grant.expires_at <= now:
        return "Expired"
    if grant.effective_at is not None and grant.effective_at > now:
        return "Scheduled"
    if balance == 0:
        return "Used up"
    return "Active"


def balance_from(grant: CreditGrant, now: datetime | None = None) -> GrantBalance:
    """The balance of a grant read through :func:`with_totals`."""
    now = now or timezone.now()
    left = max(grant.amount - grant.t_debited + grant.t_reinstated, 0)
    expired = grant.t_expired
    if _ended(grant, now):
        expired, left = expired + left, 0
    return GrantBalance(
        pk=grant.pk,
        stripe_id=grant.stripe_id,
        account_id=grant.account_id,
        name=grant.name,
        category=grant.category,
        source=grant.source,
        status=grant.status,
        status_label=_status_label(grant, now, left),
        amount=grant.amount,
        currency=grant.currency,
        purchase_amount=grant.purchase_amount,
        purchase_invoice_id=grant.purchase_invoice_id,
        price_ids=frozenset(grant.price_ids or ()),
        priority=grant.priority,
        effective_at=grant.effective_at,
        expires_at=grant.expires_at,
        voided_at=grant.voided_at,
        created_at=grant.created_at,
        last_error=grant.last_error,
        ledger_balance=left,
        applied=max(grant.t_applied - grant.t_given_back, 0),
        expired_amount=expired,
    )


def balances_of(
    *, grants: QuerySet[CreditGrant], now: datetime | None = None
) -> dict[int, GrantBalance]:
    """``{grant pk: GrantBalance}`` for a queryset of grants (one query); the admin's."""
    now = now or timezone.now()
    return {grant.pk: balance_from(grant, now) for grant in with_totals(grants)}


def grant_balance(*, grant: CreditGrant, now: datetime | None = None) -> GrantBalance:
    """One grant's balance (one query)."""
    return balances_of(grants=CreditGrant.objects.filter(pk=grant.pk), now=now)[grant.pk]


def grant_balances(*, account: Account, now: datetime | None = None) -> list[GrantBalance]:
    """The account's active grants in its currency (those Stripe can apply to its
    invoices: [BC] "The credit grant's currency matches the invoice currency"), oldest
    first, with balances. One query."""
    now = now or timezone.now()
    grants = CreditGrant.objects.filter(
        account=account, status=Status.ACTIVE, currency=account.currency
    ).order_by("created_at", "pk")
    return [balance_from(grant, now) for grant in with_totals(grants)]


def account_grants(*, account: Account, now: datetime | None = None) -> list[GrantBalance]:
    """Every grant of the account, newest first, with balances and a status label
    (Active, Scheduled, Used up, Expired, Voided, Awaiting payment, ...). One query."""
    now = now or timezone.now()
    grants = CreditGrant.objects.filter(account=account).order_by("-created_at", "-pk")
    return [balance_from(grant, now) for grant in with_totals(grants)]
