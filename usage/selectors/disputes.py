"""Disputes as the customer reads them on an invoice line's page."""

from billing.models import Account
from usage.models import UsageDispute


def disputes_for_line(*, account: Account, invoice_id: str, line_id: str) -> list[UsageDispute]:
    """The account's disputes of one invoice line, newest first, with their corrections."""
    return list(
        UsageDispute.objects.filter(account=account, invoice_id=invoice_id, line_id=line_id)
        .select_related("correction", "meter")
        .order_by("-created_at", "-id")
    )
