"""Admin: the inboxes of Stripe events: status events (what the webhook recorded, what is
applied) and thin events (meter error reports: what they said, what was marked failed);
the thin-event destinations (a secret pasted from the Dashboard can be added here)."""

from django.contrib import admin

from billing.models import PendingAccountEvent, ThinEvent, ThinEventDestination


@admin.register(PendingAccountEvent)
class PendingAccountEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "event_type", "received_at", "applied_at", "attempts"]
    list_filter = ["event_type", ("applied_at", admin.EmptyFieldListFilter)]
    search_fields = ["=event_id"]
    readonly_fields = [f.name for f in PendingAccountEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ThinEvent)
class ThinEventAdmin(admin.ModelAdmin):
    list_display = ["stripe_id", "type", "related_object_id", "received_at", "processed_at",
                    "attempts", "outcome", "last_error"]  # fmt: skip
    list_filter = ["type", ("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["=stripe_id", "=related_object_id"]
    readonly_fields = [f.name for f in ThinEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ThinEventDestination)
class ThinEventDestinationAdmin(admin.ModelAdmin):
    list_display = ["stripe_id", "url", "created_at"]
