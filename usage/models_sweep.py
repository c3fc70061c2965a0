"""The alert sweep's per-account watermark (issue 19): what an account's last no-op
evaluation was computed from, and the rollup writes no evaluation has seen yet, so that
the next sweep can skip it while nothing it depends on has changed
(``usage.services.alert_sweep``)."""

from django.db import models

from billing.models import Account


class SweepWatermark(models.Model):
    """One row per account: the digest of the inputs of its last evaluation that found
    nothing to claim or retry (``inputs``), and when that was. A sweep skips the account
    while the digest of its current inputs is the same and none of its rules or budgets
    answers differently with time alone (see ``usage.services.alert_sweep``)."""

    account = models.OneToOneField(
        Account, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    inputs = models.CharField(
        max_length=32, blank=True, help_text="blake2b digest, hex; empty: evaluate next time"
    )
    period_start = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id} at {self.evaluated_at:%Y-%m-%d %H:%M}"


class SweepTouch(models.Model):
    """A write to an account's hourly rollups that no evaluation has seen yet.

    Written by the database, not by Django: triggers on ``usage_usagerollup`` add one row
    per account per statement that inserts, updates or deletes its rollups, in the
    writer's transaction (``usage.sweep_triggers``), whichever code path writes them
    (ingestion, the hour cap, corrections, a bulk load). Insert-only, so writers never
    wait on each other here. The sweep reads an account's rows before reading its usage
    and deletes exactly those after evaluating it. A plain id, not a foreign key: rollups
    are deleted with their account, and the trigger must not refer to a deleted row."""

    account_id = models.BigIntegerField(db_index=True)

    def __str__(self) -> str:
        return f"{self.account_id} #{self.pk}"
