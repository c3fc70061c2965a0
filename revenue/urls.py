"""Mounted at ``admin/revenue/`` in ``config.urls``, before the admin site's own URLs."""

from django.contrib import admin
from django.urls import path

from revenue import views

app_name = "revenue"

urlpatterns = [
    path("", admin.site.admin_view(views.waterfall_page), name="waterfall"),
    path("waterfall.csv", admin.site.admin_view(views.waterfall_csv_view), name="waterfall_csv"),
]
