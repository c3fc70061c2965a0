"""Admin for corrections: the audit log (read-only) and a form that makes a correction
through ``usage.services.corrections`` (never by editing the ledger)."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from usage.models import UsageCorrection, VoidedEvent
from usage.services.corrections import CorrectionNotPossible, usage_events_void


class VoidForm(forms.ModelForm):
    identifiers = forms.CharField(
        widget=forms.Textarea, help_text="Identifiers of the events to void, one per line"
    )

    class Meta:
        model = UsageCorrection
        fields = ["account", "meter", "reason"]


class VoidedEventInline(admin.TabularInline):
    model = VoidedEvent
    fields = ["event"]
    readonly_fields = ["event"]
    extra = 0
    can_delete = False


@admin.register(UsageCorrection)
class UsageCorrectionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "account", "meter", "kind", "quantity", "path", "created_by"]
    list_filter = ["path", "kind", "meter"]
    search_fields = ["reason", "account__name", "stripe_canceled_identifier"]
    inlines = [VoidedEventInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = VoidForm
        return super().get_form(request, obj, **kwargs)

    def get_inlines(self, request, obj=None):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in UsageCorrection._meta.fields]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            made = usage_events_void(
                account=form.cleaned_data["account"],
                meter=form.cleaned_data["meter"],
                identifiers=form.cleaned_data["identifiers"].split(),
                reason=form.cleaned_data["reason"],
                user=request.user,
            )
        except CorrectionNotPossible as exc:
            messages.error(request, str(exc))
            return
        for field in UsageCorrection._meta.concrete_fields:
            setattr(obj, field.attname, getattr(made, field.attname))

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
