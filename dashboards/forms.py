from decimal import Decimal

from django import forms

from billing.money import major_to_minor
from usage.models import AlertRule


class AlertRuleForm(forms.Form):
    kind = forms.ChoiceField(label="Alert me when", choices=AlertRule.Kind.choices)
    meter = forms.ChoiceField(label="Meter", required=False)
    threshold_percent = forms.IntegerField(
        label="Share of the allowance (%)", required=False, min_value=1, max_value=1000
    )
    amount = forms.DecimalField(
        label="Amount",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=3,
    )

    def __init__(self, *args, meters=(), currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meter"].choices = [("", "—")] + [(m.pk, m.display_name) for m in meters]
        self.fields["amount"].label = f"Amount ({currency.upper()})"
        self.currency = currency

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
