from django.conf import settings
from django.db import models


class Account(models.Model):
    """An end customer's organisation: dj-stripe's subscriber, one Stripe customer."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        SUSPENDED = "suspended", "Suspended"
        CANCELED = "canceled", "Canceled"

    name = models.CharField(max_length=200)
    billing_email = models.EmailField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Stripe ``created`` time of the last event applied to ``status``, so an event
    # delivered late (older than what was applied) cannot undo a newer one.
    status_event_created = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    # The one currency the account is billed in: its subscription uses the plan's
    # prices in this currency, and every money figure it sees is in it.
    currency = models.CharField(max_length=3, default="usd")
    slack_webhook_url = models.URLField(
        max_length=500, blank=True, help_text="Slack-compatible incoming webhook for alerts"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="accounts"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def email(self) -> str:
        """dj-stripe requires its subscriber model to have an ``email``."""
        return self.billing_email


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        BILLING = "billing", "Billing"
        # Usage only: amounts hidden when the operator sets BILLING_VIEWERS_SEE_AMOUNTS=false.
        MEMBER = "member", "Viewer"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Each member chooses the alert e-mails they receive: none, or all but the muted kinds.
    receives_alerts = models.BooleanField(default=True)
    muted_alert_kinds = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One account per user keeps "a user only sees their own account" simple.
            models.UniqueConstraint(fields=["user"], name="membership_one_account_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"


class Meter(models.Model):
    """A usage meter: Meterdesk's record of a Stripe billing meter (dj-stripe has none)."""

    class Aggregation(models.TextChoices):
        SUM = "sum", "Sum of values"
        COUNT = "count", "Count of events"
        LAST = "last", "Last value in the period"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"

    event_name = models.CharField(max_length=100, unique=True)
    display_name = models.CharField(max_length=250)
    unit_label = models.CharField(max_length=40, default="unit")
    aggregation = models.CharField(max_length=8, choices=Aggregation.choices)
    customer_payload_key = models.CharField(max_length=100, default="stripe_customer_id")
    value_payload_key = models.CharField(max_length=100, default="value")
    stripe_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event_name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def stripe_formula(self) -> str:
        """Counts are sent to Stripe as values of a ``sum`` meter, so they pre-aggregate."""
        return "last" if self.aggregation == self.Aggregation.LAST else "sum"


class Plan(models.Model):
    """A sellable plan from the catalog file: one Stripe product and its prices."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    stripe_product_id = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class PlanPrice(models.Model):
    """One price of a plan, by its stable lookup key; ``stripe_price_id`` is the current one."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices")
    lookup_key = models.CharField(max_length=200, unique=True)
    nickname = models.CharField(max_length=200, blank=True)
    meter = models.ForeignKey(
        Meter, null=True, blank=True, on_delete=models.PROTECT, related_name="plan_prices"
    )
    currency = models.CharField(max_length=3, default="usd")
    stripe_price_id = models.CharField(max_length=255, blank=True)
    spec_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["plan", "id"]

    def __str__(self) -> str:
        return self.nickname or self.lookup_key

    @property
    def is_metered(self) -> bool:
        return self.meter_id is not None


class PendingAccountEvent(models.Model):
    """A Stripe event that moves an account's status, written in dj-stripe's webhook
    transaction together with the stored ``Event`` (a transactional inbox).

    dj-stripe skips the handlers of an event it has stored already, so a redelivery
    cannot repair a lost side effect: this row can. The webhook tries to queue the work
    at once; when the broker is down, the beat drain (``billing.tasks.apply_pending_
    account_events``) applies what is still pending.
    """

    event_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=250)
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class ThinEventDestination(models.Model):
    """A Stripe v2 event destination delivering thin events (``event_payload: thin``) to
    ``/stripe/thin-events/``: dj-stripe 2.11 receives only v1 snapshot events, so thin
    ones (``v1.billing.meter.error_report_triggered``) have their own receiver, verified
    with the destination's signing secret (shown by Stripe only when it is created)."""

    stripe_id = models.CharField(max_length=255, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=255)
    enabled_events = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.stripe_id} -> {self.url}"


class ThinEvent(models.Model):
    """A verified thin event (inbox row, one per Stripe event id): the receiver stores it
    and answers 200; a task fetches the whole event (``GET /v2/core/events/{id}``), hands
    it to the handlers registered for its type (:mod:`billing.thin_events`) and records
    what they did. Rows not processed yet are retried by a beat task."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=255)
    related_object_id = models.CharField(max_length=255, blank=True)
    created = models.CharField(max_length=64, help_text="Stripe's created time (ISO 8601)")
    received_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(null=True, blank=True, help_text="The event's data, as fetched")
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outcome = models.TextField(blank=True, help_text="What the handlers did with it")

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=models.Q(processed_at__isnull=True),
                name="billing_thin_event_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


# Credits and invitations live in their own modules.
from billing.models_credits import AutoTopUp, CreditBalanceTransaction, CreditGrant  # noqa: E402, F401
from billing.models_members import Invitation  # noqa: E402, F401
