from django.urls import path

from dashboards import alerts_views, views

app_name = "dashboards"

urlpatterns = [
    path("", views.home, name="home"),
    path("chart/<slug:event_name>.json", views.chart, name="chart"),
    path("invoices/", views.invoices, name="invoices"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("alerts/", alerts_views.alerts, name="alerts"),
    path("alerts/add/", alerts_views.alert_add, name="alert_add"),
    path("alerts/<int:rule_id>/remove/", alerts_views.alert_remove, name="alert_remove"),
]
