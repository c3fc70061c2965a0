from billing.models import Account, Membership
from billing.services.accounts import account_ensure_stripe_customer
from billing.stripe_api import stripe_client

PORTAL_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.BILLING})


class PortalNotAllowed(PermissionError):
    pass


def portal_session_create(*, account: Account, user, return_url: str) -> str:
    """A Stripe Customer Portal session for the user's own account; returns its URL."""
    membership = account.memberships.filter(user=user).first()
    if membership is None or membership.role not in PORTAL_ROLES:
        raise PortalNotAllowed("only the account's owner and billing members manage billing")
    customer = account_ensure_stripe_customer(account=account)
    session = stripe_client().v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": return_url}
    )
    return session.url
