"""Budgets and hard caps (issue 16): what a customer allows itself to use or spend in a
billing period, the warn levels that alert, and whether the operator's backend should stop
at the cap (the entitlement check answers ``cap_reached``; usage is never dropped).

A ``Budget`` is per meter (``units``) or for the whole bill (``spend``, minor units of
the subscription's currency). ``PlanBudgetPolicy`` holds staff's plan-level defaults and
the most a customer may set.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Account, Meter, Plan


def default_warn_levels() -> list[int]:
    return [50, 80, 100]


class BudgetKind(models.TextChoices):
    UNITS = "units", "Units of one meter"
    SPEND = "spend", "Spend on the whole bill"


_KIND_FIELDS = Q(kind="units", meter__isnull=False, currency="") | Q(
    kind="spend", meter__isnull=True, currency__regex=r"^[a-z]{3}$"
)


class Budget(models.Model):
    """A customer's budget for each billing period (units of a meter, or money)."""

    Kind = BudgetKind

    class Source(models.TextChoices):
        CUSTOMER = "customer", "Set by the customer"
        STAFF = "staff", "Set by staff"
        PLAN_DEFAULT = "plan_default", "Plan default"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="budgets")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    meter = models.ForeignKey(
        Meter, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    limit = models.BigIntegerField(help_text="Units of the meter, or minor units for spend")
    currency = models.CharField(max_length=3, blank=True, help_text="Spend budgets only")
    warn_levels = models.JSONField(
        default=default_warn_levels,
        help_text="Percentages of the limit that alert, e.g. [50, 80, 100]",
    )
    hard_cap = models.BooleanField(
        default=False, help_text="At the limit the entitlement check answers cap_reached"
    )
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.CUSTOMER)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "kind", "meter_id"]
        constraints = [
            models.CheckConstraint(condition=_KIND_FIELDS, name="budget_fields_match_kind"),
            models.CheckConstraint(condition=Q(limit__gt=0), name="budget_limit_positive"),
            models.UniqueConstraint(
                fields=["account", "meter"], condition=Q(kind="units"), name="budget_one_per_meter"
            ),
            models.UniqueConstraint(
                fields=["account"], condition=Q(kind="spend"), name="budget_one_spend"
            ),
        ]

    def __str__(self) -> str:
        what = self.meter if self.kind == self.Kind.UNITS else f"spend ({self.currency})"
        return f"{self.account}: {what} budget {self.limit}"


class PlanBudgetPolicy(models.Model):
    """Staff's rules for a plan's budgets: a default each new subscriber gets, and the
    most a customer may set (``max_limit``; empty: no maximum)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="budget_policies")
    kind = models.CharField(max_length=5, choices=BudgetKind.choices)
    meter = models.ForeignKey(
        Meter, null=True, blank=True, on_delete=models.CASCADE, related_name="budget_policies"
    )
    currency = models.CharField(max_length=3, blank=True, help_text="Spend policies only")
    default_limit = models.BigIntegerField(null=True, blank=True)
    default_warn_levels = models.JSONField(default=default_warn_levels)
    default_hard_cap = models.BooleanField(default=False)
    max_limit = models.BigIntegerField(
        null=True, blank=True, help_text="A customer may not set a limit above this"
    )

    class Meta:
        verbose_name_plural = "plan budget policies"
        constraints = [
            models.CheckConstraint(condition=_KIND_FIELDS, name="budget_policy_fields_match_kind"),
            models.UniqueConstraint(
                fields=["plan", "meter"],
                condition=Q(kind="units"),
                name="budget_policy_one_per_meter",
            ),
            models.UniqueConstraint(
                fields=["plan", "currency"],
                condition=Q(kind="spend"),
                name="budget_policy_one_spend_per_currency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan}: {self.get_kind_display()}"


# The sweep's watermark lives in its own module; imported here so that the app registry
# (which imports usage.models, and it this module) knows it.
from usage.models_sweep import SweepTouch, SweepWatermark  # noqa: E402, F401
