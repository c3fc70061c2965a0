"""A customer's dispute of an invoice line, and how staff resolved it."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Account, Meter
from usage.models_corrections import UsageCorrection


class UsageDispute(models.Model):
    """Opened from the drill-down by an owner or billing member; resolved by staff with a
    correction or a reply, the customer e-mailed either way."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        CORRECTION = "correction", "A correction"
        REPLY = "reply", "A reply"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="disputes")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="disputes")
    invoice_id = models.CharField(max_length=255, help_text="The Stripe invoice's id")
    line_id = models.CharField(max_length=255, help_text="The Stripe invoice line's id")
    day = models.DateField(null=True, blank=True, help_text="The disputed day (UTC), if any")
    hour = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The disputed hour of that day (UTC), if any"
    )
    message = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    reply = models.TextField(blank=True, help_text="Staff's reply to the customer")
    correction = models.ForeignKey(
        UsageCorrection,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="disputes",
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "invoice_id", "line_id"])]
        constraints = [
            models.CheckConstraint(condition=~Q(message=""), name="usage_dispute_message"),
            models.CheckConstraint(
                condition=Q(hour__isnull=True) | Q(hour__lte=23, day__isnull=False),
                name="usage_dispute_hour",
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute #{self.pk} {self.account} {self.invoice_id} ({self.status})"
