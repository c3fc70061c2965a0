from decimal import Decimal

from django import forms

from billing.money import major_to_minor
from usage.models import AlertRule

USAGE_FIELDS = ("meter", "threshold_percent")
SPEND_FIELDS = ("amount",)


class AlertRuleForm(forms.Form):
    """One alert rule. Only the fields of the chosen kind are read and validated: a share
    left at 0 (or junk) does not block a spend rule, nor an amount a usage rule."""

    # Short enough for a 390 px select ("Usage reaches a share of the allow…" was cut).
    kind = forms.ChoiceField(
        label="Alert me when",
        choices=[
            (AlertRule.Kind.USAGE_SHARE, "Usage reaches a share"),
            (AlertRule.Kind.PROJECTED_USAGE_SHARE, "Usage is projected to reach a share"),
            (AlertRule.Kind.SPEND, "Spend reaches an amount"),
            (AlertRule.Kind.PROJECTED_SPEND, "Spend is projected to reach an amount"),
        ],
    )
    meter = forms.ChoiceField(label="Meter", required=False)
    threshold_percent = forms.IntegerField(
        label="Share of the included allowance (%)",
        required=False,
        min_value=1,
        max_value=1000,
        error_messages={
            # min/max messages are %-formatted with the limit: "%%" is a literal percent.
            "min_value": "Enter a share between 1%% and 1000%%.",
            "max_value": "Enter a share between 1%% and 1000%%.",
            "invalid": "Enter a whole number of percent, like 80.",
        },
    )
    amount = forms.DecimalField(
        label="Amount",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=3,
        error_messages={
            "min_value": "Enter an amount above zero.",
            "invalid": "Enter an amount like 150 or 150.50.",
        },
    )

    def __init__(self, *args, meters=(), currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meter"].choices = [("", "—")] + [(m.pk, m.display_name) for m in meters]
        self.fields["amount"].label = f"Amount ({currency.upper()})"
        self.currency = currency

    @property
    def chosen_kind(self) -> str:
        """The kind asked for (bound) or shown first (unbound)."""
        if self.is_bound:
            return self.data.get(self.add_prefix("kind"), "")
        return self.initial.get("kind", AlertRule.Kind.USAGE_SHARE)

    def fields_of_kind(self, kind: str) -> tuple[str, ...]:
        if kind in AlertRule.USAGE_KINDS:
            return USAGE_FIELDS
        if kind in AlertRule.SPEND_KINDS:
            return SPEND_FIELDS
        return ()

    def full_clean(self):
        # The other kind's fields are skipped entirely (a disabled field is not read from
        # the data), then put back so the form renders them as typed.
        ignored = [
            name
            for name in USAGE_FIELDS + SPEND_FIELDS
            if name not in self.fields_of_kind(self.chosen_kind)
        ]
        for name in ignored:
            self.fields[name].disabled = True
        try:
            super().full_clean()
        finally:
            for name in ignored:
                self.fields[name].disabled = False

    def clean_amount(self) -> int | None:
        """The amount typed in major units, as minor units (half up)."""
        amount = self.cleaned_data.get("amount")
        return None if amount is None else major_to_minor(amount, self.currency)

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind in AlertRule.USAGE_KINDS:
            if not data.get("meter"):
                self.add_error("meter", "Choose a meter.")
            if data.get("threshold_percent") is None and "threshold_percent" not in self.errors:
                self.add_error("threshold_percent", "Enter a share between 1% and 1000%.")
        elif (
            kind in AlertRule.SPEND_KINDS
            and data.get("amount") is None
            and "amount" not in self.errors
        ):
            self.add_error("amount", "Enter an amount above zero.")
        return data
