from django.apps import AppConfig


class RevenueConfig(AppConfig):
    """Revenue recognition (ASC 606 / IFRS 15) for staff: schedules, waterfall, journal.

    No models: everything is computed from the dj-stripe invoice mirror and the usage
    rollups when asked.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "revenue"
    verbose_name = "Revenue recognition"
