from django.contrib import admin, messages

from billing.mirror.customers import rows_of_customer_id
from usage.models import (
    IngestKey,
    ReconciliationResult,
    ReportingFailure,
    UsageEvent,
    UsageReport,
)
from usage.services.keys import ingest_key_create, ingest_key_revoke
from usage.services.reporting import usage_report_retry
from usage.too_late import too_late_amount_display


class _CustomerIdSearch:
    """Admin search also finds the rows of the account whose Stripe customer id is the
    search term (exactly), through the billing mirror."""

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found |= rows_of_customer_id(queryset=queryset, customer_id=search_term, path="account")
        return found, may_have_duplicates


@admin.register(IngestKey)
class IngestKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw_key = ingest_key_create(name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        obj.created_at = key.created_at
        self.message_user(
            request,
            f"Ingest key created. Copy it now, it will not be shown again: {raw_key}",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            ingest_key_revoke(key=key)
        self.message_user(request, "Revoked.")


@admin.register(UsageEvent)
class UsageEventAdmin(_CustomerIdSearch, admin.ModelAdmin):
    list_display = ["identifier", "account", "meter", "value", "timestamp", "received_at", "report"]
    list_filter = ["meter"]
    search_fields = ["=identifier", "account__name"]  # and a Stripe customer id: below
    list_select_related = ["account", "meter", "report"]
    raw_id_fields = ["account", "meter", "report"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False  # the ledger is append-only

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(UsageReport)
class UsageReportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event_name",
        "stripe_customer_id",
        "period_start",
        "sequence",
        "value",
        "event_count",
        "status",
        "stripe_error_code",
        "amount_at_stake",
        "attempts",
        "last_error",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = ["status", "stripe_error_code", "event_name"]
    search_fields = ["=identifier", "=stripe_customer_id", "account__name"]
    list_select_related = ["account", "meter"]
    actions = ["retry"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="At stake")
    def amount_at_stake(self, report):
        """For too-late usage: what Stripe will not bill (the pricing engine's estimate)."""
        if report.status != UsageReport.Status.TOO_LATE:
            return ""
        return too_late_amount_display(report=report)

    @admin.action(description="Retry selected failed / too-late reports")
    def retry(self, request, queryset):
        """Queued again; one Stripe accepted and then refused (a meter error report) is
        re-sent under a new identifier (usage.services.reporting.usage_report_retry)."""
        count = sum(usage_report_retry(report=report) for report in queryset)
        self.message_user(request, f"{count} report(s) queued again for the next pass.")


@admin.register(ReportingFailure)
class ReportingFailureAdmin(_CustomerIdSearch, admin.ModelAdmin):
    """(customer, meter) pairs whose reporting raised: the pass skipped them and went on
    with the others. ``consecutive failures`` is 0 once the pair succeeded again."""

    list_display = [
        "account",
        "meter",
        "stage",
        "consecutive_failures",
        "total_failures",
        "last_failed_at",
        "recovered_at",
        "last_error",
    ]
    list_filter = ["stage", "meter"]
    search_fields = ["account__name"]  # and a Stripe customer id: below
    list_select_related = ["account", "meter"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ReconciliationResult)
class ReconciliationResultAdmin(_CustomerIdSearch, admin.ModelAdmin):
    list_display = [
        "account",
        "meter",
        "period_start",
        "period_end",
        "ledger_value",
        "stripe_value",
        "difference",
        "too_late_value",
        "status",
        "suggested_action",
        "checked_at",
    ]
    list_filter = ["status", "meter"]
    search_fields = ["account__name"]  # and a Stripe customer id: below
    list_select_related = ["account", "meter"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


from usage import admin_alerts  # noqa: E402, F401  (alert rules and deliveries)
