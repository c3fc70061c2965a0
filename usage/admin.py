from django.contrib import admin, messages

from billing.mirror.customers import rows_of_customer_id
from usage.models import (
    IngestKey,
    ReconciliationResult,
    ReportingFailure,
    UsageEvent,
    UsageReport,
)
from usage.selectors.events_by_identifier import events_by_identifier
from usage.selectors.parity import parity_text, period_parity
from usage.services.keys import ingest_key_create, ingest_key_revoke
from usage.services.reporting import usage_report_retry
from usage.too_late import too_late_amount_display

EMPTY = "\u2014"


def short_period(start, end) -> str:
    """``Nov 11–Dec 11 2026`` (UTC): a period in one narrow column."""
    return f"{start:%b %-d}\u2013{end:%b %-d %Y}"


def short_moment(moment) -> str:
    return f"{moment:%b %-d %H:%M}" if moment else EMPTY


def truncated(text: str, limit: int = 48) -> str:
    """The start of a long text for a list column (the change page has all of it)."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class _CustomerIdSearch:
    """Admin search also finds the rows of the account whose Stripe customer id is the
    search term (exactly), through the billing mirror."""

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found |= rows_of_customer_id(queryset=queryset, customer_id=search_term, path="account")
        return found, may_have_duplicates


class _RecordAdmin:
    """Records the system writes (reports, failures, reconciliation): read-only in admin,
    never added by hand; their actions (retry, ...) go through services."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(IngestKey)
class IngestKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "scope" in form.base_fields:  # left out of the post: the default, ingest
            form.base_fields["scope"].required = False
        return form

    def get_readonly_fields(self, request, obj=None):
        # A key's scope is chosen when it is made: widening a read-only key would hand
        # ingestion to whoever holds it; make a new key instead.
        fixed = ["prefix", "created_at", "last_used_at", "revoked_at"]
        return [*fixed, "scope"] if obj is not None else fixed

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw_key = ingest_key_create(name=obj.name, scope=obj.scope)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        obj.created_at = key.created_at
        kind = "Read-only API key" if key.scope == IngestKey.Scope.READ else "Ingest key"
        self.message_user(
            request,
            f"{kind} created. Copy it now, it will not be shown again: {raw_key}",
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
    # An identifier, an account name or a Stripe customer id. Identifiers are found
    # through EventIdentifier (below): the partitioned ledger has no identifier index.
    search_fields = ["account__name"]
    list_select_related = ["account", "meter", "report"]
    raw_id_fields = ["account", "meter", "report"]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            ids = events_by_identifier(identifiers=[search_term.strip()]).values("id")
            found |= queryset.filter(id__in=ids)
        return found, may_have_duplicates

    def has_change_permission(self, request, obj=None):
        return False  # the ledger is append-only

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(UsageReport)
class UsageReportAdmin(_RecordAdmin, admin.ModelAdmin):
    # Short, narrow columns: the whole row fits a 1280 px screen (issue 14, item 10).
    list_display = [
        "id",
        "account_name",
        "event_name",
        "period",
        "value",
        "event_count",
        "status",
        "error",
        "amount_at_stake",
        "attempts",
        "sent",
    ]
    list_filter = ["status", "stripe_error_code", "event_name"]
    search_fields = ["=identifier", "=stripe_customer_id", "account__name"]
    list_select_related = ["account", "meter"]
    actions = ["retry"]
    show_full_result_count = False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, report):
        return report.account.name

    @admin.display(description="Period", ordering="period_start")
    def period(self, report):
        return short_period(report.period_start, report.period_end)

    @admin.display(description="Error")
    def error(self, report):
        return report.stripe_error_code or truncated(report.last_error)

    @admin.display(description="Sent", ordering="sent_at")
    def sent(self, report):
        return short_moment(report.sent_at)

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
class ReportingFailureAdmin(_RecordAdmin, _CustomerIdSearch, admin.ModelAdmin):
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


@admin.register(ReconciliationResult)
class ReconciliationResultAdmin(_RecordAdmin, _CustomerIdSearch, admin.ModelAdmin):
    # Account names and short columns, so Ledger / Stripe / Difference / Status are on
    # screen at 1280 px; the full suggested action is on the change page.
    list_display = [
        "account_name",
        "meter_name",
        "period",
        "ledger",
        "stripe",
        "difference",
        "too_late",
        "status",
        "action",
        "checked",
    ]
    list_filter = ["status", "meter"]
    search_fields = ["account__name"]  # and a Stripe customer id: below
    list_select_related = ["account", "meter"]

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, result):
        return result.account.name

    @admin.display(description="Meter", ordering="meter__event_name")
    def meter_name(self, result):
        return result.meter.display_name or result.meter.event_name

    @admin.display(description="Period", ordering="period_start")
    def period(self, result):
        return short_period(result.period_start, result.period_end)

    @admin.display(description="Ledger", ordering="ledger_value")
    def ledger(self, result):
        return result.ledger_value

    @admin.display(description="Stripe", ordering="stripe_value")
    def stripe(self, result):
        return EMPTY if result.stripe_value is None else result.stripe_value

    @admin.display(description="Too late", ordering="too_late_value")
    def too_late(self, result):
        return result.too_late_value

    @admin.display(description="Action")
    def action(self, result):
        return truncated(result.suggested_action)

    @admin.display(description="Checked", ordering="checked_at")
    def checked(self, result):
        return short_moment(result.checked_at)

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "parity"]

    @admin.display(description="Parity with the invoice")
    def parity(self, result):
        return parity_text(
            period_parity(
                account=result.account, meter=result.meter, period_start=result.period_start
            )
        )


from usage import (  # noqa: E402
    admin_alerts,  # noqa: F401  (alert rules and deliveries)
    admin_budgets,  # noqa: F401  (budgets and plan budget policies)
    admin_corrections,  # noqa: F401  (the corrections audit log)
    admin_disputes,  # noqa: F401  (customers' disputes and their resolution)
)
