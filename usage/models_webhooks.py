"""Alert channels beyond e-mail (issue 16): the operator's signed webhook endpoints and
each account's Slack-compatible incoming webhook, and one ``ChannelDelivery`` per (alert,
channel, endpoint) with its attempts and the receiver's last answer."""

from django.db import models
from django.db.models import Q

from usage.models import AlertDelivery


class WebhookEndpoint(models.Model):
    """An operator URL that receives every alert, signed with ``secret``
    (``X-Meterdesk-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``)."""

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100)
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.description or self.url


class ChannelDelivery(models.Model):
    """One alert sent (or being retried) through one channel."""

    class Channel(models.TextChoices):
        WEBHOOK = "webhook", "Operator webhook"
        SLACK = "slack", "Slack incoming webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    alert = models.ForeignKey(
        AlertDelivery, on_delete=models.CASCADE, related_name="channel_deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    url = models.URLField(max_length=500)
    payload = models.TextField(help_text="The exact body sent (what the signature covers)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The receiver's last answer (cut)")
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "channel deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "endpoint"],
                condition=Q(channel="webhook"),
                name="channel_delivery_once_per_endpoint",
            ),
            models.UniqueConstraint(
                fields=["alert"], condition=Q(channel="slack"), name="channel_delivery_once_slack"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.url}: {self.status}"
