"""Reads: what a mirrored Stripe event is about (dj-stripe's ``Event`` rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from djstripe.models import Event

from billing.mirror.customers import account_for_customer_id
from billing.mirror.shapes import object_id
from billing.models import Account


@dataclass(frozen=True)
class AccountEvent:
    """A Stripe event about one account's customer."""

    account: Account
    type: str
    created: datetime


def event_customer_id(data: dict) -> str:
    """The customer an event's object belongs to ("" when none): the object itself
    when it is a customer, else its ``customer`` field (an id or an expanded object)."""
    obj = (data.get("data") or {}).get("object") or {}
    if obj.get("object") == "customer":
        return str(obj.get("id") or "")
    return object_id(obj.get("customer"))


def event_account(*, event_id: str) -> AccountEvent | None:
    """The account a mirrored event is about, with the event's type and time; None when
    its customer belongs to no account. Raises ``Event.DoesNotExist`` for an unknown id."""
    event = Event.objects.get(id=event_id)
    account = account_for_customer_id(customer_id=event_customer_id(event.stripe_data or {}))
    if account is None:
        return None
    return AccountEvent(account=account, type=event.type, created=event.created)
