"""Small typed helpers that build test data through the real services."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from billing.models import Account, Membership
from billing.services.accounts import membership_add
from usage.services.ingest import usage_events_ingest


def make_user(
    account: Account, username: str, role: str = Membership.Role.OWNER, email: str = ""
) -> AbstractUser:
    user = get_user_model().objects.create_user(
        username, email=email, password=f"pw-{username}-123"
    )
    membership_add(account=account, user=user, role=role)
    return user


def ingest(customer_id: str, event_name: str, values: list[int], prefix: str) -> None:
    """Send events through the ingestion service, 1,000 per batch; all must be accepted."""
    events = [
        {
            "event_name": event_name,
            "customer": customer_id,
            "value": v,
            "identifier": f"{prefix}-{i}",
        }
        for i, v in enumerate(values)
    ]
    for start in range(0, len(events), 1000):
        result = usage_events_ingest(events=events[start : start + 1000]).as_dict()
        assert result["rejected"] == [], result["rejected"][:3]
