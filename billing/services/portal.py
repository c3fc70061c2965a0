from billing.models import Account
from billing.selectors import user_manages_billing
from billing.services.accounts import account_ensure_stripe_customer
from billing.stripe_api import stripe_client


class PortalNotAllowed(PermissionError):
    pass


def portal_session_create(*, account: Account, user, return_url: str) -> str:
    """A Stripe Customer Portal session for the user's own account; returns its URL."""
    if not user_manages_billing(account=account, user=user):
        raise PortalNotAllowed("only the account's owner and billing members manage billing")
    customer = account_ensure_stripe_customer(account=account)
    session = stripe_client().v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": return_url}
    )
    return session.url
