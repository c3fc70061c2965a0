"""Reads: the period usage at a timestamp is reported in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.mirror.customers import customer_id_for_account
from billing.mirror.periods import account_billing_period, account_subscription_spans
from billing.models import Account


def calendar_month(at: datetime) -> tuple[datetime, datetime]:
    at = at.astimezone(UTC)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def usage_period_for(*, account: Account, at: datetime) -> tuple[datetime, datetime]:
    """The period usage at ``at`` is reported in; see ``PeriodResolver``."""
    return PeriodResolver(account).period(at)


class PeriodResolver:
    """The period usage at a timestamp is reported (and reconciled) in, for one account.

    The account's Stripe billing period holding the timestamp (from the dj-stripe
    mirror, ``billing.mirror.periods.account_billing_period``), or, where no subscription
    covers it, the UTC calendar month cut at the edges of the subscriptions around it,
    so that periods never overlap and each reconciles against Stripe on its own.

    Billing periods found are reused for every timestamp inside them, and timestamps
    outside every subscription need no query, so a pass over many events of one
    account costs a few queries.
    """

    def __init__(self, account: Account):
        self.account = account
        self.billing: list[tuple[datetime, datetime]] = []
        self.spans = account_subscription_spans(account=account)

    def _covered(self, at: datetime) -> bool:
        return any(start <= at and (end is None or at < end) for start, end in self.spans)

    def _fallback(self, at: datetime) -> tuple[datetime, datetime]:
        lo, hi = calendar_month(at)
        for start, end in self.spans:
            if end is not None and end <= at:
                lo = max(lo, end)
            if start > at:
                hi = min(hi, start)
        return lo, hi

    def period(self, at: datetime) -> tuple[datetime, datetime]:
        for period in self.billing:
            if period[0] <= at < period[1]:
                return period
        if not self._covered(at):
            return self._fallback(at)
        period = account_billing_period(account=self.account, at=at)
        if period is None:  # a subscription without usable periods: the plain month
            return calendar_month(at)
        self.billing.append(period)
        return period


def account_stripe_customer_id(*, account: Account) -> str | None:
    """The account's Stripe customer id (its newest), or None."""
    return customer_id_for_account(account=account)
