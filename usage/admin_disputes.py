"""Admin for customers' disputes: the list (account, invoice, status, age) and a form that
resolves an open dispute with a reply or a correction (an existing one of the account, or
one made here by voiding events through ``usage.services.corrections``)."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.utils import timezone
from django.utils.timesince import timesince

from usage.models import UsageCorrection, UsageDispute
from usage.services.corrections import CorrectionNotPossible, usage_events_void
from usage.services.disputes import (
    DisputeNotPossible,
    usage_dispute_resolve_correction,
    usage_dispute_resolve_reply,
)

CUSTOMER_FIELDS = ["account", "meter", "invoice_id", "line_id", "day", "hour", "message",
                   "created_by", "created_at", "status", "resolution", "correction",
                   "resolved_by", "resolved_at"]  # fmt: skip


class ResolveForm(forms.ModelForm):
    resolve_with = forms.ChoiceField(
        choices=[("", "— leave open —"), *UsageDispute.Resolution.choices], required=False
    )
    link_correction = forms.ModelChoiceField(
        queryset=UsageCorrection.objects.none(),
        required=False,
        help_text="With a correction: an existing correction of this account…",
    )
    void_identifiers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="…or the identifiers of events to void now (one per line); the reply "
        "is the correction's reason",
    )

    class Meta:
        model = UsageDispute
        fields = ["reply"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["link_correction"].queryset = UsageCorrection.objects.filter(
            account_id=self.instance.account_id
        )

    def clean(self):
        data = super().clean()
        kind = data.get("resolve_with")
        if kind and self.instance.status != UsageDispute.Status.OPEN:
            raise forms.ValidationError("This dispute is already resolved.")
        if kind == UsageDispute.Resolution.REPLY and not data.get("reply", "").strip():
            self.add_error("reply", "A reply needs a text.")
        if kind == UsageDispute.Resolution.CORRECTION:
            linked, void = data.get("link_correction"), data.get("void_identifiers", "").split()
            if bool(linked) == bool(void):
                self.add_error("link_correction", "Link one correction or void events.")
            if void and not data.get("reply", "").strip():
                self.add_error("reply", "Voiding events needs a reason: write it as the reply.")
        return data


@admin.register(UsageDispute)
class UsageDisputeAdmin(admin.ModelAdmin):
    list_display = ["pk", "account_name", "invoice_id", "status", "age", "resolution"]
    list_filter = ["status", "resolution"]
    search_fields = ["account__name", "invoice_id", "message"]
    list_select_related = ["account"]
    form = ResolveForm

    @admin.display(description="Account", ordering="account__name")
    def account_name(self, obj: UsageDispute) -> str:
        return obj.account.name

    @admin.display(description="Age", ordering="created_at")
    def age(self, obj: UsageDispute) -> str:
        return timesince(obj.created_at, timezone.now())

    def has_add_permission(self, request) -> bool:
        return False  # customers open disputes from the drill-down

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_fields(self, request, obj=None):
        if obj is not None and obj.status == UsageDispute.Status.OPEN:
            return [*CUSTOMER_FIELDS, "resolve_with", "reply", "link_correction",
                    "void_identifiers"]  # fmt: skip
        return [*CUSTOMER_FIELDS, "reply"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == UsageDispute.Status.OPEN:
            return CUSTOMER_FIELDS
        return [*CUSTOMER_FIELDS, "reply"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        kind = data.get("resolve_with")
        try:
            if kind == UsageDispute.Resolution.REPLY:
                usage_dispute_resolve_reply(dispute=obj, reply=data["reply"], user=request.user)
            elif kind == UsageDispute.Resolution.CORRECTION:
                correction = data.get("link_correction") or usage_events_void(
                    account=obj.account, meter=obj.meter, reason=data["reply"],
                    identifiers=data["void_identifiers"].split(), user=request.user,
                )  # fmt: skip
                usage_dispute_resolve_correction(
                    dispute=obj, correction=correction, reply=data["reply"], user=request.user
                )
        except (CorrectionNotPossible, DisputeNotPossible) as exc:
            messages.error(request, str(exc))
            request._dispute_refused = True
        obj.refresh_from_db()

    def response_change(self, request, obj):
        if getattr(request, "_dispute_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def save_related(self, request, form, formsets, change):
        return
