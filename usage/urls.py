from django.urls import path

from usage import entitlement_views, read_api_views, views

app_name = "usage"

urlpatterns = [
    path("events", views.events, name="events"),
    path("summary", views.summary, name="summary"),
]

# Mounted at /api/v1/entitlements/ by config/urls.py.
entitlement_urlpatterns = (
    [path("check", entitlement_views.check, name="check")],
    "entitlements",
)

# Mounted at /api/v1/customers/ by config/urls.py: the read API (docs/openapi.yaml).
read_api_urlpatterns = (
    [
        path("<str:customer>/usage", read_api_views.usage, name="usage"),
        path("<str:customer>/invoices", read_api_views.invoices, name="invoices"),
        path("<str:customer>/alerts", read_api_views.alerts, name="alerts"),
    ],
    "read_api",
)
