"""The admin's index: Meterdesk's own models first, in the order staff use them, and
dj-stripe's mirror after them as one "Stripe mirror (dj-stripe)" section.

``MeterdeskAdminConfig`` replaces ``django.contrib.admin`` in ``INSTALLED_APPS`` so that
``admin.site`` is a :class:`MeterdeskAdminSite` (Django's documented way to override the
default site). The models dj-stripe registers but Meterdesk never uses are unregistered
in ``billing.admin_djstripe``.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig

# Apps and, within them, models (object names) in the order of the index. Models not
# listed come after the listed ones of their app, alphabetically.
APP_ORDER = ("billing", "usage", "djstripe")
MODEL_ORDER = {
    "billing": ("Account", "Meter", "Plan"),
    "usage": (
        "UsageEvent",
        "UsageReport",
        "ReconciliationResult",
        "AlertRule",
        "AlertDelivery",
        "ReportingFailure",
        "IngestKey",
    ),
    "djstripe": ("Customer", "Subscription", "Invoice", "Product", "Price", "Event"),
}
APP_NAMES = {"billing": "Billing", "usage": "Usage", "djstripe": "Stripe mirror (dj-stripe)"}


class MeterdeskAdminSite(AdminSite):
    site_header = "Meterdesk administration"
    site_title = "Meterdesk admin"
    index_title = "Meterdesk"
    # The list pages need the width: reconciliation's columns fit 1280 px without it.
    enable_nav_sidebar = False

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            label = app["app_label"]
            app["name"] = APP_NAMES.get(label, app["name"])
            order = MODEL_ORDER.get(label, ())
            app["models"].sort(
                key=lambda m: (
                    order.index(m["object_name"]) if m["object_name"] in order else len(order),
                    m["name"],
                )
            )
        first = {label: i for i, label in enumerate(APP_ORDER)}
        apps.sort(key=lambda a: (first.get(a["app_label"], len(first)), a["name"]))
        return apps


class MeterdeskAdminConfig(AdminConfig):
    default_site = "billing.admin_site.MeterdeskAdminSite"
