from django.contrib import admin

from usage.admin import short_moment, truncated
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


class _Resolved(admin.SimpleListFilter):
    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    """Every alert: a rule's (level 100) or a budget's warn level, sent or pending, open
    or resolved (period ended, budget raised), with its channel deliveries."""

    list_display = [
        "sent_at",
        "account",
        "what",
        "level",
        "summary_short",
        "period_start",
        "resolved",
        "channels",
    ]
    list_filter = ["sent_at", _Resolved, "level"]
    search_fields = ["account__name", "summary", "recipients", "resolution"]
    readonly_fields = [f.name for f in AlertDelivery._meta.fields]
    list_select_related = ["account", "rule", "budget__meter"]

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(channel_count=Count("channel_deliveries"))

    @admin.display(description="Rule / budget")
    def what(self, delivery):
        if delivery.budget_id:
            return f"Budget: {delivery.budget.meter or 'spend'}"
        if delivery.rule_id:
            return f"Rule: {delivery.rule.get_kind_display()}"
        return "\u2014"

    @admin.display(description="Summary")
    def summary_short(self, delivery):
        return truncated(delivery.summary, 70)

    @admin.display(description="Resolved")
    def resolved(self, delivery):
        if delivery.resolved_at is None:
            return "open"
        return f"{short_moment(delivery.resolved_at)}: {delivery.resolution}"

    @admin.display(description="Channels", ordering="channel_count")
    def channels(self, delivery):
        return delivery.channel_count


from usage import admin_webhooks  # noqa: E402, F401  (webhook endpoints, channel deliveries)
