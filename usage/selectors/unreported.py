"""Reads: usage that has not reached Stripe yet, per account (and the guard that keeps
staff from deleting the mirrored Stripe customer such usage still needs)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Sum

from billing.models import Account
from usage.models import UsageEvent, UsageReport

UNSENT = [UsageReport.Status.PENDING, UsageReport.Status.SENDING, UsageReport.Status.FAILED]


@dataclass(frozen=True)
class Unreported:
    unclaimed_events: int = 0  # in no report yet
    unsent_reports: int = 0  # pending, sending or failed
    events_in_unsent_reports: int = 0

    @property
    def events(self) -> int:
        return self.unclaimed_events + self.events_in_unsent_reports


def unreported_usage_by_account(*, account_ids: Iterable[int]) -> dict[int, Unreported]:
    """Accounts (of ``account_ids``) with usage not yet in a sent report: two queries."""
    ids = set(account_ids)
    unclaimed = dict(
        # Voided by a correction before reporting: never to be sent, so not pending.
        UsageEvent.objects.filter(account_id__in=ids, report__isnull=True, void__isnull=True)
        .order_by()
        .values_list("account_id")
        .annotate(n=Count("id"))
    )
    unsent = {
        account_id: (reports, events)
        for account_id, reports, events in UsageReport.objects.filter(
            account_id__in=ids, status__in=UNSENT
        )
        .order_by()
        .values_list("account_id")
        .annotate(reports=Count("id"), events=Sum("event_count"))
    }
    return {
        account_id: Unreported(
            unclaimed_events=unclaimed.get(account_id, 0),
            unsent_reports=unsent.get(account_id, (0, 0))[0],
            events_in_unsent_reports=unsent.get(account_id, (0, 0))[1] or 0,
        )
        for account_id in unclaimed.keys() | unsent.keys()
    }


def customer_deletion_guard(*, customer_accounts: dict[str, int | None]) -> list[str]:
    """For :mod:`billing.customer_deletion`: one reason per customer whose account still
    has usage that is not in a sent report (deleting the customer would strand it)."""
    pending = unreported_usage_by_account(
        account_ids=[a for a in customer_accounts.values() if a is not None]
    )
    names = dict(Account.objects.filter(pk__in=pending).values_list("pk", "name"))
    reasons = []
    for customer_id, account_id in sorted(customer_accounts.items()):
        usage = pending.get(account_id)
        if usage is None:
            continue
        reasons.append(
            f"Stripe customer {customer_id} (account “{names.get(account_id, account_id)}”) "
            f"has {usage.events:,} usage event(s) not yet reported to Stripe: "
            f"{usage.unclaimed_events:,} not yet in a report, and "
            f"{usage.events_in_unsent_reports:,} in {usage.unsent_reports:,} report(s) "
            "pending, sending or failed. Deleting it would strand them: let the reporting "
            "pass send them (retry or resolve failed reports in Usage reports) first."
        )
    return reasons
