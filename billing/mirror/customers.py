"""Reads: which Stripe customer belongs to which Meterdesk account (dj-stripe mirror)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet
from djstripe.models import Customer

from billing.models import Account


def customer_id_for_account(*, account: Account) -> str | None:
    """The id of the account's newest mirrored Stripe customer, or None."""
    return (
        Customer.objects.filter(subscriber=account)
        .order_by("-created")
        .values_list("id", flat=True)
        .first()
    )


def live_customer_id_for_account(*, account: Account) -> str | None:
    """Like ``customer_id_for_account`` but skipping customers purged from Stripe."""
    return (
        Customer.objects.filter(subscriber=account, date_purged__isnull=True)
        .order_by("-created")
        .values_list("id", flat=True)
        .first()
    )


def account_for_customer_id(*, customer_id: str) -> Account | None:
    """The account the Stripe customer ``customer_id`` belongs to, or None."""
    if not customer_id:
        return None
    return Account.objects.filter(djstripe_customers__id=customer_id).first()


def account_ids_for_customer_ids(*, customer_ids: Iterable[str]) -> dict[str, int]:
    """``{customer id: account id}`` for the customers that belong to an account.

    One query of two columns (the ingest hot path calls it once per batch)."""
    ids = set(customer_ids)
    if not ids:
        return {}
    return dict(
        Customer.objects.filter(id__in=ids, subscriber__isnull=False).values_list(
            "id", "subscriber_id"
        )
    )


def accounts_with_stripe_customer() -> QuerySet[Account]:
    """Accounts that have at least one mirrored Stripe customer (distinct, unordered)."""
    return Account.objects.filter(djstripe_customers__isnull=False).distinct()


def rows_of_customer_id(*, queryset: QuerySet, customer_id: str, path: str = "") -> QuerySet:
    """The rows of ``queryset`` whose account has the Stripe customer ``customer_id``
    (exact id; admin search). ``path`` leads from the queryset's model to its account
    (``"account"`` for a model with an account FK, ``""`` for Account itself). A
    subquery, not a join, so no row is repeated."""
    accounts = Account.objects.filter(djstripe_customers__id=customer_id.strip()).values("pk")
    return queryset.filter(**{f"{path}__in" if path else "pk__in": accounts})
