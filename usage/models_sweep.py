"""The alert sweep's per-account watermark (issue 19): what an account's last no-op
evaluation was computed from, so that the next sweep can skip it while nothing it
depends on has changed (``usage.services.alert_sweep``)."""

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
    inputs = models.CharField(max_length=32, help_text="blake2b digest, hex")
    period_start = models.DateTimeField()
    evaluated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id} at {self.evaluated_at:%Y-%m-%d %H:%M}"
