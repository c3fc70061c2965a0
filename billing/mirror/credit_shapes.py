"""Pure parsing of Stripe's billing-credit JSON: credit grants, credit balance
transactions and the purchase invoice of a paid grant. The one place these shapes are
read; no database, no network.

Shapes (stripe-python's ``stripe/billing/_credit_grant.py`` and
``_credit_balance_transaction.py``; https://docs.stripe.com/api/billing/credit-grant/object,
https://docs.stripe.com/api/billing/credit-balance-transaction/object):

- a grant's ``amount`` is ``{type: monetary, monetary: {currency, value}}``;
- a transaction is ``type: credit`` (``credit.type`` ``credits_granted`` |
  ``credits_application_invoice_voided``) or ``type: debit`` (``debit.type``
  ``credits_applied`` | ``credits_expired`` | ``credits_voided``), the amount in the same
  monetary shape under ``credit`` or ``debit``; an applied debit (and a reinstating
  credit) names the invoice and its line item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.mirror.shapes import object_id, timestamp

# The metadata key that ties a Stripe grant to its CreditGrant row, and a purchase
# invoice to the grant it buys.
GRANT_METADATA_KEY = "meterdesk_grant"
PURCHASE_METADATA_KEY = "meterdesk_credit_grant"


def as_dict(obj: Any) -> dict:
    """A stripe-python object (or a plain mapping) as a plain dict."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj or {})


def _monetary(amount: Mapping[str, Any] | None) -> tuple[int, str]:
    monetary = (amount or {}).get("monetary") or {}
    return int(monetary.get("value") or 0), str(monetary.get("currency") or "").lower()


@dataclass(frozen=True)
class StripeGrant:
    id: str
    amount: int
    currency: str
    effective_at: datetime | None
    expires_at: datetime | None
    voided_at: datetime | None
    grant_pk: str  # metadata[meterdesk_grant], "" when not made by Meterdesk


def grant_from_stripe(data: Any) -> StripeGrant:
    data = as_dict(data)
    amount, currency = _monetary(data.get("amount"))
    return StripeGrant(
        id=str(data.get("id") or ""),
        amount=amount,
        currency=currency,
        effective_at=timestamp(data.get("effective_at")),
        expires_at=timestamp(data.get("expires_at")),
        voided_at=timestamp(data.get("voided_at")),
        grant_pk=str((data.get("metadata") or {}).get(GRANT_METADATA_KEY) or ""),
    )


@dataclass(frozen=True)
class StripeCreditTransaction:
    id: str
    grant_id: str  # the Stripe grant (credgr_...)
    type: str  # "credit" | "debit"
    kind: str  # credit.type or debit.type
    amount: int  # magnitude, minor units
    currency: str
    effective_at: datetime
    invoice_id: str
    invoice_line_item_id: str


def transaction_from_stripe(data: Any) -> StripeCreditTransaction:
    data = as_dict(data)
    kind_of = str(data.get("type") or "")
    side = (data.get(kind_of) or {}) if kind_of in ("credit", "debit") else {}
    kind = str(side.get("type") or "")
    amount, currency = _monetary(side.get("amount"))
    # credits_applied / credits_application_invoice_voided name the invoice line.
    source = side.get(kind) or {}
    effective = timestamp(data.get("effective_at")) or timestamp(data.get("created"))
    return StripeCreditTransaction(
        id=str(data.get("id") or ""),
        grant_id=object_id(data.get("credit_grant")),
        type=kind_of,
        kind=kind,
        amount=abs(amount),
        currency=currency,
        effective_at=effective,
        invoice_id=object_id(source.get("invoice")) if isinstance(source, Mapping) else "",
        invoice_line_item_id=(
            object_id(source.get("invoice_line_item")) if isinstance(source, Mapping) else ""
        ),
    )


@dataclass(frozen=True)
class PurchaseInvoice:
    id: str
    status: str  # draft | open | paid | uncollectible | void
    customer_id: str
    grant_pk: str  # metadata[meterdesk_credit_grant], "" for any other invoice


def invoice_from_stripe(data: Any) -> PurchaseInvoice:
    data = as_dict(data)
    return PurchaseInvoice(
        id=str(data.get("id") or ""),
        status=str(data.get("status") or ""),
        customer_id=object_id(data.get("customer")),
        grant_pk=str((data.get("metadata") or {}).get(PURCHASE_METADATA_KEY) or ""),
    )


def event_invoice(event_data: Mapping[str, Any]) -> PurchaseInvoice | None:
    """The invoice an ``invoice.*`` event is about (its ``data.object``), or None."""
    obj = (event_data.get("data") or {}).get("object") or {}
    if obj.get("object") != "invoice":
        return None
    return invoice_from_stripe(obj)
