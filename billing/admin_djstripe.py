"""Admin: of the ~40 models dj-stripe registers, keep the ones Meterdesk's staff use
(customers, subscriptions, invoices, prices, products, events and the webhook endpoint
with its received triggers); the others (charges, coupons, payouts, ...) are mirrored
data nobody here reads, and are unregistered so the index shows what matters."""

from django.contrib import admin

KEPT = (
    "Customer",
    "Subscription",
    "Invoice",
    "Price",
    "Product",
    "Event",
    "WebhookEndpoint",
    "WebhookEventTrigger",
)


def unregister_unused_djstripe_admins(site: admin.AdminSite = admin.site) -> None:
    for model in list(site._registry):
        if model._meta.app_label == "djstripe" and model.__name__ not in KEPT:
            site.unregister(model)


unregister_unused_djstripe_admins()
