from django.urls import path

from dashboards import views

app_name = "dashboards"

urlpatterns = [
    path("", views.home, name="home"),
    path("chart/<slug:event_name>.json", views.chart, name="chart"),
    path("invoices/", views.invoices, name="invoices"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
]
