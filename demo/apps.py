from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo seeder, live traffic and the staff login `make demo` uses. Nothing imports
    it; it uses the other apps' services like any client would."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
