from django.apps import AppConfig
from django.core.signals import setting_changed


def _stripe_api_host_changed(*, setting: str, **_kwargs) -> None:
    if setting == "STRIPE_API_HOST":
        from billing.stripe_api import point_module_stripe_at_api_host

        point_module_stripe_at_api_host()


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"

    def ready(self) -> None:
        from billing import account_changes, webhooks  # noqa: F401  (connect receivers)
        from billing.stripe_api import point_module_stripe_at_api_host

        # dj-stripe talks to Stripe through stripe-python's module-level host: set once.
        point_module_stripe_at_api_host()
        setting_changed.connect(_stripe_api_host_changed, dispatch_uid="billing.stripe_api_host")
