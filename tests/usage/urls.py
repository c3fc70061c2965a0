"""Only what the usage tests need, so they do not depend on other apps' URL modules."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/usage/", include("usage.urls")),
]
