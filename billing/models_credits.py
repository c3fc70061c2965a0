"""Prepaid and promotional credits: Meterdesk's records of Stripe's billing credit grants
(``billing.credit_grant``) and their balance transactions (dj-stripe 2.11 has neither).

A promotional grant is created in Stripe at once. A paid grant is a purchase first: a
one-off invoice for ``purchase_amount``; the grant is created in Stripe when that
invoice is paid (``awaiting_payment`` until then), so credits are never given for money
not received. ``stripe_id`` is set once Stripe has the grant. Stripe applies grants to
metered invoice lines at finalization; Meterdesk's live balance applies them to the
usage in its own ledger, the same way (``billing.pricing.credits``).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Account


class CreditGrant(models.Model):
    class Category(models.TextChoices):
        PAID = "paid", "Paid"
        PROMOTIONAL = "promotional", "Promotional"

    class Source(models.TextChoices):
        STAFF = "staff", "Granted by staff"
        TOP_UP = "top_up", "Top-up bought by the customer"
        AUTO_TOP_UP = "auto_top_up", "Automatic top-up"

    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        PENDING = "pending", "Being created in Stripe"
        ACTIVE = "active", "Active"
        VOIDED = "voided", "Voided"
        CANCELED = "canceled", "Purchase canceled"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credit_grants")
    stripe_id = models.CharField(max_length=255, blank=True, db_index=True)
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=12, choices=Category.choices)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.STAFF)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    amount = models.BigIntegerField(help_text="Credits granted, minor units of currency")
    currency = models.CharField(max_length=3)
    purchase_amount = models.BigIntegerField(
        null=True, blank=True, help_text="What the customer pays (paid grants), minor units"
    )
    purchase_invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Empty: every metered price (Stripe's scope price_type=metered); else these prices.
    price_ids = models.JSONField(default=list, blank=True)
    priority = models.PositiveSmallIntegerField(default=50, help_text="0 (first) .. 100")
    effective_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_grant_amount_positive"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"), name="credit_grant_currency_code"
            ),
            models.CheckConstraint(
                condition=Q(priority__lte=100), name="credit_grant_priority_range"
            ),
            models.CheckConstraint(
                condition=Q(category="promotional", purchase_amount__isnull=True)
                | Q(category="paid", purchase_amount__gte=0),
                name="credit_grant_purchase_matches_category",
            ),
            models.UniqueConstraint(
                fields=["stripe_id"], condition=~Q(stripe_id=""), name="credit_grant_stripe_id"
            ),
            # At most one automatic top-up in flight per account: never bought twice.
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(source="auto_top_up", status__in=["awaiting_payment", "pending"]),
                name="credit_grant_one_auto_top_up_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_category_display()}, {self.account})"


class CreditBalanceTransaction(models.Model):
    """A Stripe ``billing.credit_balance_transaction``: a credit to a grant (granted,
    or reinstated when an invoice was voided) or a debit (applied to an invoice line,
    expired, voided). ``amount`` is the magnitude in minor units."""

    class Type(models.TextChoices):
        CREDIT = "credit", "Credit"
        DEBIT = "debit", "Debit"

    stripe_id = models.CharField(max_length=255, unique=True)
    grant = models.ForeignKey(CreditGrant, on_delete=models.CASCADE, related_name="transactions")
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="credit_transactions"
    )
    type = models.CharField(max_length=8, choices=Type.choices)
    kind = models.CharField(max_length=48, help_text="credit.type or debit.type in Stripe")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    effective_at = models.DateTimeField()
    invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    invoice_line_item_id = models.CharField(max_length=255, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["effective_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="credit_txn_amount_magnitude")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


class AutoTopUp(models.Model):
    """Buy ``amount`` of paid credits when the live remaining balance falls below
    ``threshold`` (both minor units of ``currency``)."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="auto_top_up")
    enabled = models.BooleanField(default=False)
    threshold = models.BigIntegerField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    last_triggered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=0, amount__gt=0), name="auto_top_up_amounts"
            )
        ]

    def __str__(self) -> str:
        return f"Auto top-up for {self.account}"
