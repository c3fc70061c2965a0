"""Reads: what a past-due (or suspended) account owes and until when it may pay.

``past_due_notice_for_account`` gathers the account's open invoices from the mirror
(amount remaining, hosted invoice URL, due date) and the suspension deadline:
``Account.past_due_since`` + ``BILLING_PAST_DUE_GRACE_HOURS``, the same grace the beat
task ``accounts_suspend_overdue`` applies. Amounts stay integer minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from billing.mirror.invoices import Invoice, open_invoices_for_account
from billing.models import Account

Status = Account.Status


@dataclass(frozen=True)
class PastDueNotice:
    status: str  # Account.Status.PAST_DUE or SUSPENDED
    invoices: tuple[Invoice, ...]  # open, oldest first
    amount_due: int  # minor units, the open invoices in ``currency``
    currency: str
    suspends_at: datetime | None  # past due only: when the grace period ends

    @property
    def is_suspended(self) -> bool:
        return self.status == Status.SUSPENDED


def account_suspension_deadline(*, account: Account) -> datetime | None:
    """When a past-due account is suspended if still unpaid (None when not past due)."""
    if account.status != Status.PAST_DUE or account.past_due_since is None:
        return None
    return account.past_due_since + timedelta(hours=settings.BILLING_PAST_DUE_GRACE_HOURS)


def past_due_notice_for_account(*, account: Account) -> PastDueNotice | None:
    """The notice a past-due or suspended account's members see, else None."""
    if account.status not in (Status.PAST_DUE, Status.SUSPENDED):
        return None
    invoices = tuple(open_invoices_for_account(account=account))
    currency = invoices[0].currency if invoices else ""
    return PastDueNotice(
        status=account.status,
        invoices=invoices,
        amount_due=sum(i.amount_remaining for i in invoices if i.currency == currency),
        currency=currency,
        suspends_at=account_suspension_deadline(account=account),
    )
