from django.contrib import admin

from usage.models import AlertDelivery, AlertRule


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "account",
        "kind",
        "meter",
        "threshold_percent",
        "amount",
        "currency",
        "is_default",
    ]
    list_filter = ["kind", "is_default"]
    search_fields = ["account__name"]
    autocomplete_fields = ["account"]


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "account", "summary", "recipients", "period_start"]
    list_filter = ["sent_at"]
    search_fields = ["account__name", "summary", "recipients"]
    readonly_fields = [f.name for f in AlertDelivery._meta.fields]

    def has_add_permission(self, request):
        return False
