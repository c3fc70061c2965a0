"""Admin for alert channels: the operator's webhook endpoints (the signing secret is
generated and shown once, then masked) and every channel delivery with the receiver's
answers (read-only; "retry now")."""

import secrets

from django import forms
from django.contrib import admin, messages

from usage.admin import short_moment, truncated
from usage.models_webhooks import ChannelDelivery, WebhookEndpoint
from usage.services.alert_channel_send import channel_deliveries_retry_now
from usage.services.alert_channels import url_allowed

SECRET_PREFIX = "whsec_"


def masked(secret: str) -> str:
    return f"{SECRET_PREFIX}\u2026{secret[-4:]}" if secret else "\u2014"


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "enabled"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        if not url_allowed(url):
            raise forms.ValidationError("Enter an http:// or https:// URL.", code="scheme")
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "enabled", "secret_masked", "created_at"]
    list_filter = ["enabled"]
    readonly_fields = ["secret_masked", "created_at"]
    actions = ["rotate_secret"]

    @admin.display(description="Signing secret")
    def secret_masked(self, endpoint):
        return masked(endpoint.secret)

    def save_model(self, request, obj, form, change):
        if not obj.secret:
            obj.secret = SECRET_PREFIX + secrets.token_hex(24)
            self._show_once(request, obj)
        super().save_model(request, obj, form, change)

    def _show_once(self, request, endpoint):
        messages.warning(
            request,
            f"Signing secret for {endpoint.url} (shown only now; copy it to the receiver): "
            f"{endpoint.secret}",
        )

    @admin.action(description="Rotate the signing secret (shown once)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            endpoint.secret = SECRET_PREFIX + secrets.token_hex(24)
            endpoint.save(update_fields=["secret"])
            self._show_once(request, endpoint)


@admin.register(ChannelDelivery)
class ChannelDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "alert_summary",
        "channel",
        "url",
        "status",
        "attempts",
        "last_status_code",
        "response",
        "next_attempt",
        "delivered_at",
    ]
    list_filter = ["status", "channel"]
    search_fields = ["url", "alert__summary", "alert__account__name", "last_response"]
    list_select_related = ["alert"]
    readonly_fields = [f.name for f in ChannelDelivery._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Alert")
    def alert_summary(self, delivery):
        return truncated(delivery.alert.summary, 60)

    @admin.display(description="Response")
    def response(self, delivery):
        return truncated(delivery.last_response or delivery.last_error, 60)

    @admin.display(description="Next attempt", ordering="next_attempt_at")
    def next_attempt(self, delivery):
        return short_moment(delivery.next_attempt_at)

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        count = channel_deliveries_retry_now(ids=queryset.values_list("pk", flat=True))
        messages.success(request, f"{count} deliveries queued for another attempt.")
