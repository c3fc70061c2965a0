from django.apps import AppConfig


class UsageConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "usage"

    def ready(self) -> None:
        # billing may not import usage: usage tells billing's Customer admin what must
        # not be deleted (billing.customer_deletion explains the registry).
        from billing.customer_deletion import customer_deletion_guard_register
        from usage.selectors.unreported import customer_deletion_guard

        customer_deletion_guard_register(name="usage.unreported", guard=customer_deletion_guard)

        # Stripe's asynchronous meter event errors (thin events, received by billing).
        from billing.thin_events import thin_event_handler_register
        from usage.services.meter_errors import EVENT_TYPE, meter_error_report_apply

        thin_event_handler_register(event_type=EVENT_TYPE, handler=meter_error_report_apply)
