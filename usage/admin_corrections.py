"""Admin for corrections: the audit log (read-only) and a form that makes a correction
through the correction services (never by editing the ledger): void named events
(``usage_events_void``) or adjust a billing period's quantity (``usage_quantity_adjust``).
A correction Stripe refused (status failed) is retried with the "Retry" action."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from usage.models import UsageCorrection, VoidedEvent
from usage.selectors.periods import PeriodResolver
from usage.services.correction_adjust import usage_quantity_adjust
from usage.services.correction_apply import correction_retry
from usage.services.corrections import CorrectionNotPossible, usage_events_void

Kind = UsageCorrection.Kind


class CorrectionForm(forms.ModelForm):
    kind = forms.ChoiceField(
        choices=Kind.choices, initial=Kind.VOID, required=False, widget=forms.RadioSelect
    )
    identifiers = forms.CharField(
        widget=forms.Textarea,
        required=False,
        help_text="Void events: the identifiers of the events to void, one per line",
    )
    moment = forms.DateTimeField(
        required=False,
        label="In the billing period of",
        help_text="Adjust a quantity: any moment (UTC) in the billing period to adjust",
    )
    adjust_by = forms.IntegerField(
        required=False,
        label="Adjust by",
        help_text="Adjust a quantity: signed units of the meter, e.g. -500 (sum and count "
        "meters only)",
    )

    class Meta:
        model = UsageCorrection
        fields = ["account", "meter", "kind", "reason"]

    def clean(self):
        data = super().clean()
        data["kind"] = data.get("kind") or Kind.VOID
        if data.get("kind") == Kind.VOID and not (data.get("identifiers") or "").split():
            self.add_error("identifiers", "Name at least one event to void.")
        if data.get("kind") == Kind.ADJUST:
            if data.get("moment") is None:
                self.add_error("moment", "Give a moment in the billing period to adjust.")
            if not data.get("adjust_by"):
                self.add_error("adjust_by", "Give the signed quantity, other than 0.")
        return data


class VoidedEventInline(admin.TabularInline):
    model = VoidedEvent
    fields = ["event"]
    readonly_fields = ["event"]
    extra = 0
    can_delete = False


@admin.register(UsageCorrection)
class UsageCorrectionAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "account", "meter", "kind", "quantity", "path", "status", "created_by",
    ]  # fmt: skip
    list_filter = ["status", "path", "kind", "meter"]
    search_fields = ["reason", "account__name", "stripe_canceled_identifier"]
    inlines = [VoidedEventInline]
    actions = ["retry"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = CorrectionForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "meter", "kind", "identifiers", "moment", "adjust_by", "reason"]
        return super().get_fields(request, obj)

    def get_inlines(self, request, obj=None):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in UsageCorrection._meta.fields]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _make(self, request, data) -> UsageCorrection:
        if data["kind"] == Kind.ADJUST:
            account = data["account"]
            period_start, _ = PeriodResolver(account).period(data["moment"])
            return usage_quantity_adjust(
                account=account,
                meter=data["meter"],
                period_start=period_start,
                quantity=data["adjust_by"],
                reason=data["reason"],
                user=request.user,
            )
        return usage_events_void(
            account=data["account"],
            meter=data["meter"],
            identifiers=data["identifiers"].split(),
            reason=data["reason"],
            user=request.user,
        )

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            made = self._make(request, form.cleaned_data)
        except CorrectionNotPossible as exc:
            messages.error(request, str(exc))
            return
        for field in UsageCorrection._meta.concrete_fields:
            setattr(obj, field.attname, getattr(made, field.attname))
        if made.status == UsageCorrection.Status.PENDING:
            messages.info(
                request,
                f"Correction #{made.pk} is recorded; its Stripe call follows this save. "
                "Its status says whether Stripe took it.",
            )

    @admin.action(description="Retry the Stripe call of the selected failed corrections")
    def retry(self, request, queryset):
        for correction in queryset.exclude(status=UsageCorrection.Status.APPLIED):
            done = correction_retry(correction=correction)
            if done.status == UsageCorrection.Status.APPLIED:
                messages.success(request, f"Correction #{done.pk} applied.")
            else:
                messages.error(request, f"Correction #{done.pk}: Stripe refused it: {done.error}")

    def log_addition(self, request, obj, message):
        if obj.pk is not None:
            return super().log_addition(request, obj, message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:  # refused by the service: its message is shown on the form
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def save_related(self, request, form, formsets, change):
        return  # the service wrote the voided events
