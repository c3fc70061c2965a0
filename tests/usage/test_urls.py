from django.urls import resolve

from usage import views


def test_the_usage_api_is_mounted_in_the_project_urlconf():
    assert resolve("/api/v1/usage/events", urlconf="config.urls").func is views.events
    assert resolve("/api/v1/usage/summary", urlconf="config.urls").func is views.summary
