"""The Stripe Customer Portal's configuration: ensured by ``billing_catalog apply`` and
found again for each portal session.

In test mode Stripe refuses ``billing_portal.sessions.create`` until a portal
configuration is saved ("You can’t create a portal session in test mode until you save
your customer portal settings in test mode at
https://dashboard.stripe.com/test/settings/billing/portal.", a 400 seen in the wild, e.g.
mozilla/fxa#13245). A configuration is saved in the Dashboard (that one is the default) or
created with ``POST /v1/billing_portal/configurations``
(https://docs.stripe.com/api/customer_portal/configurations/create).

Idempotent: an active default configuration (the operator's Dashboard settings) is left
as it is and used; otherwise an active configuration Meterdesk created earlier (tagged
with :data:`TAG`), otherwise any active one; only when there is none is one created.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

TAG = "meterdesk_portal"

FEATURES = {
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {
        "enabled": True,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
}


def _business_profile() -> dict:
    return {"headline": "Manage your Meterdesk billing: invoices, payment method, plan."}


def portal_configuration_find(*, client) -> str | None:
    """The id of the configuration portal sessions use, or None when there is none."""
    active = list(client.v1.billing_portal.configurations.list({"active": True, "limit": 100}).data)
    for wanted in (
        lambda c: c.is_default,
        lambda c: (c.metadata or {}).get(TAG) == "1",
        lambda c: True,
    ):
        for config in active:
            if wanted(config):
                return config.id
    return None


def portal_configuration_ensure(*, client) -> tuple[str, bool]:
    """Make sure a portal configuration exists; returns ``(id, created)``."""
    found = portal_configuration_find(client=client)
    if found is not None:
        return found, False
    config = client.v1.billing_portal.configurations.create(
        {
            "business_profile": _business_profile(),
            "features": FEATURES,
            "default_return_url": settings.SITE_URL + reverse("dashboards:home"),
            "metadata": {TAG: "1"},
        }
    )
    return config.id, True
