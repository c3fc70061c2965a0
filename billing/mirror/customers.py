"""Reads: which Stripe customer belongs to which Meterdesk account (dj-stripe mirror)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet
from djstripe.models import Customer

from billing.mirror.shapes import timestamp
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


Span = tuple[datetime, datetime | None]


def accounts_and_subscription_spans_for_customer_ids(
    *, customer_ids: Iterable[str]
) -> dict[str, tuple[int, list[Span]]]:
    """``{customer id: (account id, [(start, ended or None), ...])}`` for the customers
    that belong to an account: :func:`account_ids_for_customer_ids` and each customer's
    mirrored subscription spans (``billing.mirror.periods.account_subscription_spans``,
    per customer) in the same one query, reading three keys of each subscription's
    JSON. The ingest hot path calls it once per batch."""
    ids = set(customer_ids)
    if not ids:
        return {}
    rows = Customer.objects.filter(id__in=ids, subscriber__isnull=False).values_list(
        "id",
        "subscriber_id",
        "subscriptions__stripe_data__start_date",
        "subscriptions__stripe_data__created",
        "subscriptions__stripe_data__ended_at",
    )
    found: dict[str, tuple[int, list[Span]]] = {}
    for customer_id, account_id, start_date, created, ended_at in rows:
        spans = found.setdefault(customer_id, (account_id, []))[1]
        started = timestamp(start_date) or timestamp(created)
        if started is not None:
            spans.append((started, timestamp(ended_at)))
    return found


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
