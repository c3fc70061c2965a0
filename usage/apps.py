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

        # The entitlement check's cached state follows the account's status, its
        # subscription (billing tells) and its budgets.
        from django.db.models.signals import post_delete, post_save

        from billing.account_changes import account_change_listener_register
        from usage.models import Budget
        from usage.services.budgets import plan_default_budgets_apply_for
        from usage.services.entitlement_state import budget_changed, snapshot_invalidate

        account_change_listener_register(snapshot_invalidate)
        account_change_listener_register(plan_default_budgets_apply_for)
        post_save.connect(budget_changed, sender=Budget, dispatch_uid="usage.budget.saved")
        post_delete.connect(budget_changed, sender=Budget, dispatch_uid="usage.budget.deleted")

        # The alert sweep's rollup-write triggers, also on databases built without
        # migrations (the test suite): usage.sweep_triggers.
        from django.db.models.signals import post_migrate

        from usage.sweep_triggers import sweep_triggers_after_migrate

        post_migrate.connect(
            sweep_triggers_after_migrate, sender=self, dispatch_uid="usage.sweep_triggers"
        )
