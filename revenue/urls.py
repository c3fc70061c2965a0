"""Mounted at ``admin/revenue/`` in ``config.urls``, before the admin site's own URLs."""

from django.contrib import admin
from django.urls import path

from revenue import simulator_views, views

app_name = "revenue"

urlpatterns = [
    path("", admin.site.admin_view(views.waterfall_page), name="waterfall"),
    path("waterfall.csv", admin.site.admin_view(views.waterfall_csv_view), name="waterfall_csv"),
    path(
        "simulator/",
        admin.site.admin_view(simulator_views.account_simulator_page),
        name="simulator",
    ),
    path(
        "price-what-if/",
        admin.site.admin_view(simulator_views.price_what_if_page),
        name="price_what_if",
    ),
]
