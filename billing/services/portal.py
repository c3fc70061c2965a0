"""Customer Portal sessions for an account's owners and billing members.

Any failure on Stripe's side (no portal configuration saved yet, a refused request,
Stripe unreachable or rate-limiting) is logged for staff with Stripe's own words and
raised as :class:`PortalUnavailable`, which the view turns into a page, never a 500.
"""

from __future__ import annotations

import logging

import stripe

from billing.models import Account
from billing.selectors import user_manages_billing
from billing.services.accounts import account_ensure_stripe_customer
from billing.services.portal_configuration import portal_configuration_find
from billing.services.preview import describe_stripe_error
from billing.stripe_api import stripe_client

log = logging.getLogger(__name__)


class PortalNotAllowed(PermissionError):
    pass


class PortalUnavailable(Exception):
    """Stripe did not give a portal session. ``detail`` is for staff; ``temporary`` says
    whether trying again later may help (Stripe unreachable or rate-limiting)."""

    def __init__(self, detail: str, *, temporary: bool):
        super().__init__(detail)
        self.detail = detail
        self.temporary = temporary


def portal_session_create(*, account: Account, user, return_url: str) -> str:
    """A Stripe Customer Portal session for the user's own account; returns its URL.

    The session names its configuration (:func:`portal_configuration_find`) rather than
    relying on Stripe's default one, which exists only once saved in the Dashboard."""
    if not user_manages_billing(account=account, user=user):
        raise PortalNotAllowed("only the account's owner and billing members manage billing")
    try:
        customer = account_ensure_stripe_customer(account=account)
        client = stripe_client()
        params = {"customer": customer.id, "return_url": return_url}
        configuration = portal_configuration_find(client=client)
        if configuration is not None:
            params["configuration"] = configuration
        session = client.v1.billing_portal.sessions.create(params)
    except stripe.StripeError as exc:
        detail = describe_stripe_error(exc)
        log.error(
            "customer portal unavailable for account %s (Stripe request %s): %s",
            account.pk,
            getattr(exc, "request_id", None),
            detail,
        )
        temporary = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or (
            (exc.http_status or 0) >= 500
        )
        raise PortalUnavailable(detail, temporary=temporary) from exc
    return session.url
