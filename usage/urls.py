from django.urls import path

from usage import views

app_name = "usage"

urlpatterns = [
    path("events", views.events, name="events"),
    path("summary", views.summary, name="summary"),
]
