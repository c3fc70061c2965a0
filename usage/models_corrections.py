"""Staff corrections of usage: new entries beside the ledger, never edits of it.

A ``UsageCorrection`` voids identified events (``VoidedEvent`` rows, one per event, an
event voided at most once). Every reader of usage goes through the hourly rollups, which
the correction service recomputes without the voided events in the same transaction, and
the reporting claim leaves voided events out; the ledger rows themselves are untouched.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Account, Meter
from usage.models import UsageEvent, UsageReport


class UsageCorrection(models.Model):
    """Who corrected what, when, why, and how it was carried to Stripe (audit log)."""

    class Kind(models.TextChoices):
        VOID = "void", "Void events"
        ADJUST = "adjust", "Adjust a quantity"

    class Path(models.TextChoices):
        # Not yet reported: the voided events are left out of the claim.
        UNREPORTED = "unreported", "Not yet reported: the events do not go to Stripe"
        # Reported within 24 h: meter event adjustment (cancel) and a re-report.
        CANCEL_REREPORT = "cancel_rereport", "Canceled in Stripe and re-reported"
        # Reported earlier, invoice not finalized: a meter event with a negative value
        # (sum and count meters) or the newest remaining value (last meters).
        NEGATIVE_EVENT = "negative_event", "A correcting meter event (invoice not finalized)"
        # Invoice finalized: a credit note on it for the difference in price.
        CREDIT_NOTE = "credit_note", "A credit note on the finalized invoice"

    class Status(models.TextChoices):
        # Recorded and committed; the Stripe call (cancel, credit note) not yet confirmed.
        PENDING = "pending", "Waiting for Stripe"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Stripe refused it"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="corrections")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="corrections")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    kind = models.CharField(max_length=6, choices=Kind.choices)
    quantity = models.BigIntegerField(
        help_text="Signed change of the period's quantity (units of the meter)"
    )
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    path = models.CharField(max_length=20, choices=Path.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPLIED)
    canceled_report = models.ForeignKey(
        UsageReport, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rereport = models.ForeignKey(
        UsageReport, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stripe_canceled_identifier = models.CharField(max_length=100, blank=True)
    correcting_report = models.ForeignKey(
        UsageReport,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The meter event carrying a negative value (or a last meter's new value)",
    )
    stripe_invoice_id = models.CharField(max_length=255, blank=True)
    stripe_credit_note_id = models.CharField(max_length=255, blank=True)
    credit_amount = models.BigIntegerField(
        default=0, help_text="Credit note amount, minor units of the invoice's currency"
    )
    currency = models.CharField(max_length=3, blank=True)
    last_error = models.TextField(
        blank=True, help_text="Stripe's answer when it refused the correction's call"
    )
    billed_quantity = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Credit-note path: the period's quantity as billed once this note applies",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="usage_correction_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.quantity or 0:+d} {self.meter} ({self.account})"


class VoidedEvent(models.Model):
    """One ledger event a correction voided."""

    correction = models.ForeignKey(UsageCorrection, on_delete=models.PROTECT, related_name="voided")
    # No database foreign key: on PostgreSQL the ledger is partitioned and its primary
    # key is (id, timestamp), which a foreign key to id alone cannot reference. PROTECT
    # is still enforced by Django; the ledger is append-only.
    event = models.OneToOneField(
        UsageEvent, on_delete=models.PROTECT, related_name="void", db_constraint=False
    )

    def __str__(self) -> str:
        return str(self.event_id)
