from django.urls import path

from usage import entitlement_views, views

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
