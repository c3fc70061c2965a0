"""The usage ledger, its hourly rollups, the reporting outbox and reconciliation results.

Models hold fields, constraints and trivial properties; everything that writes lives in
``usage.services``, everything that reads in ``usage.selectors``.
"""

from django.db import models
from django.db.models import Q

from billing.models import Account, Meter


class IngestKey(models.Model):
    """An operator API key for the ingestion API: stored as a SHA-256 hash, shown once."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest and read"
        READ = "read", "Read only"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.INGEST)
    prefix = models.CharField(
        max_length=16, help_text="The key's first characters, to tell keys apart"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class UsageReport(models.Model):
    """One meter event sent (or to be sent) to Stripe: the outbox row.

    Written with its events marked, in one transaction, *before* Stripe is called; the
    deterministic ``identifier`` makes every resend (retry, crash, restart) a no-op in
    Stripe, which deduplicates meter events by identifier.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        TOO_LATE = "too_late", "Too late for Stripe"
        # Canceled in Stripe by a correction (meter event adjustment) and re-reported.
        CANCELED = "canceled", "Canceled by a correction"

    class Transport(models.TextChoices):
        """Which Stripe endpoint sent it (``USAGE_REPORT_TRANSPORT``)."""

        V1 = "v1", "v1 meter events"
        V2_STREAM = "v2_stream", "v2 meter event stream"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_reports")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="usage_reports")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    sequence = models.PositiveIntegerField(help_text="1 for the first report of the period")
    identifier = models.CharField(max_length=100, unique=True)
    stripe_customer_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=100)
    value = models.BigIntegerField(help_text="What is sent to Stripe (units of the meter)")
    event_count = models.PositiveIntegerField()
    timestamp = models.DateTimeField(help_text="The meter event's timestamp sent to Stripe")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While sending: when the sender's claim expires"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    stripe_response_id = models.CharField(max_length=255, blank=True)
    stripe_error_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="Stripe's error code when it refused the event (at once, or later in a "
        "v1.billing.meter.error_report_triggered report)",
    )
    resends = models.PositiveIntegerField(
        default=0,
        help_text="Times re-queued after Stripe accepted and then refused it: each resend "
        "has a new identifier (and Idempotency-Key)",
    )
    transport = models.CharField(
        max_length=10,
        choices=Transport.choices,
        blank=True,
        help_text="The endpoint it was first sent through (empty until then; every resend "
        "uses the same one): v1 one event a call, or the v2 stream, up to 100 a call",
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "meter", "period_start", "sequence"],
                name="usage_report_one_sequence_per_period",
            ),
            # One report in flight per (customer, meter): Stripe allows one concurrent
            # call per customer and meter, and ``last`` values must arrive in order.
            models.UniqueConstraint(
                fields=["account", "meter"],
                condition=Q(status="sending"),
                name="usage_report_one_in_flight",
            ),
            # Negative only for a correction's meter event, which carries no events.
            models.CheckConstraint(
                condition=Q(value__gte=0) | Q(event_count=0), name="usage_report_value_gte_0"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="usage_report_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.stripe_customer_id} #{self.sequence} ({self.status})"


class ReportingFailure(models.Model):
    """A (customer, meter) whose reporting raised: one row per pair, kept for staff.

    A pass catches any exception while claiming or sending one pair, records it here and
    goes on with the other pairs, so one account's data never stops everyone's
    reporting. ``consecutive_failures`` goes back to 0 when the pair next succeeds."""

    class Stage(models.TextChoices):
        CLAIM = "claim", "Claiming events into reports"
        SEND = "send", "Sending a report to Stripe"

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="reporting_failures"
    )
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="reporting_failures")
    stage = models.CharField(max_length=8, choices=Stage.choices)
    consecutive_failures = models.PositiveIntegerField(default=0)
    total_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_failed_at = models.DateTimeField()
    recovered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the pair last succeeded after failing"
    )

    class Meta:
        ordering = ["-last_failed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "meter"], name="reporting_failure_one_per_pair"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} / {self.meter}: {self.consecutive_failures} failing"


class EventIdentifier(models.Model):
    """Every identifier the ledger ever stored, once: what keeps identifiers unique for
    ever across the ledger's monthly partitions.

    On PostgreSQL ``usage_usageevent`` is partitioned by month of ``timestamp``
    (migration 0016), and a partitioned table's unique indexes must include the
    partition key, so ``UNIQUE (identifier)`` cannot live there. The ingest statement
    inserts here first (``ON CONFLICT (identifier) DO NOTHING``, one B-tree probe, not one
    per partition) and stores the event only for identifiers it claimed, in the same
    statement and transaction (``usage.services.ledger_writes``). ``event_id`` and
    ``timestamp`` find the event in its partition; ``payload_hash`` tells a duplicate
    from a conflict without touching the ledger. Rows are never deleted, except with
    their event in the transaction that inserted it (an hour over its cap): a detached
    (archived) partition keeps its identifiers here, so an old identifier sent again is
    still a duplicate.
    """

    identifier = models.CharField(max_length=100, primary_key=True)
    event_id = models.BigIntegerField(null=True, help_text="Null only within the insert")
    timestamp = models.DateTimeField()
    payload_hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.identifier


class UsageEvent(models.Model):
    """One accepted usage event: the append-only ledger, the source of truth.

    On PostgreSQL the table is partitioned by month of ``timestamp`` (primary key
    ``(id, timestamp)``, ids from the sequence ``usage_usageevent_id_seq``); identifiers
    are unique through :class:`EventIdentifier`, which every insert goes through.
    """

    # Not unique here (see EventIdentifier), and no index of its own: lookups by
    # identifier go through EventIdentifier. The account and meter foreign keys are
    # covered by the (account, meter, ...) indexes below, so they get none of their own.
    # Every index is maintained on each insert (benchmarks/bench_ingest what-if).
    # No database constraint on account and meter (migration 0019): PostgreSQL's
    # per-row RI triggers (a ``SELECT ... FOR KEY SHARE`` of the account and of the
    # meter for every event) were a large share of its CPU per ingested batch, and
    # ingestion only stores ids it has just resolved. PROTECT is enforced by Django:
    # deleting an account or meter that has events raises ProtectedError.
    identifier = models.CharField(max_length=100)
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="usage_events",
        db_index=False,
        db_constraint=False,
    )
    meter = models.ForeignKey(
        Meter,
        on_delete=models.PROTECT,
        related_name="usage_events",
        db_index=False,
        db_constraint=False,
    )
    value = models.BigIntegerField()
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    payload_hash = models.CharField(max_length=64)
    report = models.ForeignKey(
        UsageReport, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gte=0), name="usage_event_value_gte_0"),
        ]
        indexes = [
            # The reporting pass claims unreported events per (account, meter).
            models.Index(
                fields=["account", "meter", "id"],
                condition=Q(report__isnull=True),
                name="usage_event_unreported",
            ),
            models.Index(
                fields=["account", "meter", "timestamp"], name="usage_event_acct_meter_ts"
            ),
        ]

    def __str__(self) -> str:
        return self.identifier


class UsageRollup(models.Model):
    """Per (account, meter, hour): kept equal to the ledger in the ingest transaction."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="usage_rollups")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="usage_rollups")
    hour = models.DateTimeField()
    sum_value = models.BigIntegerField(default=0)
    event_count = models.BigIntegerField(default=0)
    last_value = models.BigIntegerField(default=0)
    last_timestamp = models.DateTimeField()
    # The last value is the newest event by (timestamp, id), like the ledger and like
    # the order reports reach Stripe in; the id breaks same-second ties.
    last_event_id = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "meter", "hour"], name="usage_rollup_one_per_hour"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.meter_id} {self.hour:%Y-%m-%d %H}:00"


class ReconciliationResult(models.Model):
    """The ledger against Stripe's event summaries for one (account, meter, period)."""

    class Status(models.TextChoices):
        MATCH = "match", "Match"
        MISMATCH = "mismatch", "Mismatch"
        PENDING = "pending", "Reports still in flight"
        ERROR = "error", "Could not ask Stripe"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="reconciliations")
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="reconciliations")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    ledger_value = models.BigIntegerField()
    stripe_value = models.BigIntegerField(null=True, blank=True)
    difference = models.BigIntegerField(
        null=True, blank=True, help_text="Ledger minus Stripe (positive: Stripe has less)"
    )
    too_late_value = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    suggested_action = models.TextField(blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-checked_at", "account_id", "meter_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "meter", "period_start"],
                name="usage_reconciliation_one_per_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.meter} {self.period_start:%Y-%m-%d}: {self.status}"


class AlertRule(models.Model):
    """A customer's alert: usage as a share of an allowance, or spend, so far or projected."""

    class Kind(models.TextChoices):
        USAGE_SHARE = "usage_share", "Usage reaches a share of the allowance"
        PROJECTED_USAGE_SHARE = "projected_usage_share", "Usage is projected to reach a share"
        SPEND = "spend", "Spend so far reaches an amount"
        PROJECTED_SPEND = "projected_spend", "Spend is projected to reach an amount"
        CREDITS_BELOW = "credits_below", "Credit balance falls below an amount"
        CREDITS_RUN_OUT = "credits_run_out", "Credits are projected to run out before period end"

    USAGE_KINDS = (Kind.USAGE_SHARE, Kind.PROJECTED_USAGE_SHARE)
    SPEND_KINDS = (Kind.SPEND, Kind.PROJECTED_SPEND)
    CREDIT_KINDS = (Kind.CREDITS_BELOW, Kind.CREDITS_RUN_OUT)

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    meter = models.ForeignKey(
        Meter, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    threshold_percent = models.PositiveIntegerField(null=True, blank=True)
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units")
    currency = models.CharField(max_length=3, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "meter_id", "threshold_percent", "amount"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(
                        kind__in=["usage_share", "projected_usage_share"],
                        meter__isnull=False,
                        threshold_percent__gte=1,
                        threshold_percent__lte=1000,
                    )
                    | models.Q(
                        kind__in=["spend", "projected_spend", "credits_below"],
                        amount__gt=0,
                        currency__regex=r"^[a-z]{3}$",
                    )
                    | models.Q(kind="credits_run_out", meter__isnull=True, amount__isnull=True)
                ),
                name="alert_rule_fields_match_kind",
            ),
            # Default rules are created by whichever evaluation gets there first.
            models.UniqueConstraint(
                fields=["account", "kind", "meter", "threshold_percent"],
                condition=models.Q(is_default=True),
                name="alert_rule_one_default_each",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.get_kind_display()}"


class AlertDelivery(models.Model):
    """An alert claimed for (account, rule, period); the unique constraint is what makes
    it go out once, however many evaluations or workers run. ``sent_at`` is set when the
    e-mail went out; until then the next evaluation retries it."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alerts_sent")
    rule = models.ForeignKey(
        AlertRule, null=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    summary = models.CharField(max_length=300)
    observed = models.BigIntegerField(help_text="Units, or minor units for spend rules")
    threshold = models.BigIntegerField(help_text="Units, or minor units for spend rules")
    recipients = models.TextField()
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty until the e-mail went out"
    )
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending the e-mail until then"
    )
    # Alerts v2: a budget's warn levels alert once each per period (``level`` is the
    # percentage of the budget's limit); an AlertRule has the one level 100.
    budget = models.ForeignKey(
        "usage.Budget", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    level = models.PositiveSmallIntegerField(default=100)
    resolved_at = models.DateTimeField(
        null=True, blank=True, help_text="A new period started or the budget was raised"
    )
    resolution = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-sent_at"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "rule", "level", "period_start"],
                condition=models.Q(rule__isnull=False),
                name="alert_once_per_rule_level_period",
            ),
            models.UniqueConstraint(
                fields=["account", "budget", "level", "period_start"],
                condition=models.Q(budget__isnull=False),
                name="alert_once_per_budget_level_period",
            ),
        ]

    def __str__(self) -> str:
        return self.summary


# Corrections, budgets, disputes and alert channels live in their own modules.
from usage.models_budgets import Budget, PlanBudgetPolicy  # noqa: E402, F401
from usage.models_corrections import UsageCorrection, VoidedEvent  # noqa: E402, F401
from usage.models_disputes import UsageDispute  # noqa: E402, F401
from usage.models_webhooks import ChannelDelivery, WebhookEndpoint  # noqa: E402, F401
