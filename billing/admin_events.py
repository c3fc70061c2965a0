"""Admin: the inbox of Stripe status events (what the webhook recorded, what is applied)."""

from django.contrib import admin

from billing.models import PendingAccountEvent


@admin.register(PendingAccountEvent)
class PendingAccountEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "event_type", "received_at", "applied_at", "attempts"]
    list_filter = ["event_type", ("applied_at", admin.EmptyFieldListFilter)]
    search_fields = ["=event_id"]
    readonly_fields = [f.name for f in PendingAccountEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
