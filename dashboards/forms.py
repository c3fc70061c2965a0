from decimal import Decimal

from django import forms

from billing.money import currency_exponent, major_to_minor
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
            (AlertRule.Kind.CREDITS_BELOW, "Credit balance falls below an amount"),
            (AlertRule.Kind.CREDITS_RUN_OUT, "Credits are projected to run out"),
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
        if kind in AlertRule.SPEND_KINDS or kind == AlertRule.Kind.CREDITS_BELOW:
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
            kind in (*AlertRule.SPEND_KINDS, AlertRule.Kind.CREDITS_BELOW)
            and data.get("amount") is None
            and "amount" not in self.errors
        ):
            self.add_error("amount", "Enter an amount above zero.")
        return data


class BudgetForm(forms.Form):
    """A budget as typed: what it covers (a meter, or ``spend`` for the whole bill), the
    limit (units, or major units of the currency: converted by ``major_to_minor``), the
    warn levels as a comma list and the hard cap. Range rules (levels 1..100, the plan's
    maximum) are the service's, ``usage.services.budgets``."""

    SPEND = "spend"

    target = forms.ChoiceField(label="Budget for")
    limit = forms.DecimalField(
        label="Limit",
        max_digits=18,
        decimal_places=3,
        error_messages={
            "required": "Enter a limit above zero.",
            "invalid": "Enter a number, like 10000 or 250.50.",
            "max_digits": "Enter a smaller limit.",
            "max_decimal_places": "Enter at most 3 decimals.",
        },
    )
    warn_levels = forms.CharField(
        label="Warn at (% of the limit)",
        initial="50, 80, 100",
        max_length=60,
        error_messages={"required": "Enter at least one warn level, like 80."},
        help_text="Up to 5 whole percentages from 1 to 100, separated by commas.",
    )
    hard_cap = forms.BooleanField(label="Hard cap: stop my usage at the limit", required=False)

    def __init__(self, *args, meters=(), currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.meters = {m.event_name: m for m in meters}
        self.fields["target"].choices = [
            *((m.event_name, f"{m.display_name} (units)") for m in meters),
            (self.SPEND, f"Whole bill ({currency.upper()})"),
        ]

    def clean_warn_levels(self) -> list[int]:
        parts = [p.strip().rstrip("%").strip() for p in self.cleaned_data["warn_levels"].split(",")]
        parts = [p for p in parts if p]
        if not parts:
            raise forms.ValidationError("Enter at least one warn level, like 80.", "required")
        if not all(p.isdigit() for p in parts):
            raise forms.ValidationError(
                "Enter whole percentages separated by commas, like 50, 80, 100.",
                code="warn_levels_invalid",
            )
        return [int(p) for p in parts]

    def clean(self):
        data = super().clean()
        target, limit = data.get("target"), data.get("limit")
        data["kind"] = "spend" if target == self.SPEND else "units"
        data["meter"] = self.meters.get(target)
        if limit is None:
            return data
        if target == self.SPEND:
            data["limit"] = major_to_minor(limit, self.currency)
        elif limit != limit.to_integral_value():
            self.add_error("limit", forms.ValidationError(
                "Enter a whole number of units, like 10000.", code="limit_not_whole"
            ))  # fmt: skip
        else:
            data["limit"] = int(limit)
        return data


class SlackWebhookForm(forms.Form):
    """The account's Slack incoming-webhook URL; the rules (https, length, host) are the
    service's, ``usage.services.alert_slack``."""

    slack_webhook_url = forms.CharField(
        label="Slack incoming-webhook URL",
        max_length=2_000,  # the service says "at most 500" with the length it saw
        strip=True,
        error_messages={"required": "Slack webhook URL: enter a URL."},
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.slack.com/services/…"}),
    )


# A top-up (and an automatic one) buys between these, in major units of the currency;
# zero-decimal currencies (jpy, krw, ...) a hundred times more (¥500 .. ¥1,000,000), well
# above Stripe's minimum charge (¥50: https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
TOP_UP_MIN = Decimal("5")
TOP_UP_MAX = Decimal("10000")


def top_up_limits(currency: str) -> tuple[Decimal, Decimal]:
    """(minimum, maximum) of one top-up in major units of ``currency``."""
    scale = 100 if currency_exponent(currency) == 0 else 1
    return TOP_UP_MIN * scale, TOP_UP_MAX * scale


def _major_amount(currency: str, value: Decimal) -> str:
    """``Decimal("5")`` as the customer reads it in ``currency``: "5.00 USD"."""
    exponent = currency_exponent(currency)
    shown = value.quantize(Decimal(1).scaleb(-exponent)) if exponent else value
    return f"{shown:,} {currency.upper()}"


class _CreditAmounts:
    """Converts the typed amounts (major units) to minor units and checks the range."""

    currency: str

    def _minor(self, name: str, *, minimum: Decimal | None, maximum: Decimal | None):
        amount = self.cleaned_data.get(name)
        if amount is None:
            return None
        if minimum is not None and amount < minimum:
            raise forms.ValidationError(
                f"Enter at least {_major_amount(self.currency, minimum)}.", code="min_value"
            )
        if maximum is not None and amount > maximum:
            raise forms.ValidationError(
                f"Enter at most {_major_amount(self.currency, maximum)}.", code="max_value"
            )
        minor = major_to_minor(amount, self.currency)
        if currency_exponent(self.currency) == 3 and minor % 10:
            # "these API calls require the least-significant (last) digit to be 0"
            # (three-decimal currencies, https://docs.stripe.com/currencies#three-decimal).
            raise forms.ValidationError(
                f"Enter an amount in steps of 0.010 {self.currency.upper()}: Stripe charges "
                "three-decimal currencies in tens of their smallest unit.",
                code="three_decimal_step",
            )
        return minor


def _money_field(label: str, *, required: bool = True) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        max_digits=14,
        decimal_places=3,
        error_messages={
            "required": "Enter an amount, like 50 or 49.50.",
            "invalid": "Enter an amount, like 50 or 49.50.",
            "max_digits": "Enter a smaller amount.",
            "max_decimal_places": "Enter at most 3 decimals.",
            "max_whole_digits": "Enter a smaller amount.",
        },
    )


class TopUpForm(_CreditAmounts, forms.Form):
    """Buy prepaid credits: the amount in major units of the account's currency, between
    ``TOP_UP_MIN`` and ``TOP_UP_MAX``; ``cleaned_data["amount"]`` is minor units."""

    amount = _money_field("Amount")

    def __init__(self, *args, currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["amount"].label = f"Amount ({currency.upper()})"

    def clean_amount(self) -> int | None:
        minimum, maximum = top_up_limits(self.currency)
        return self._minor("amount", minimum=minimum, maximum=maximum)


class AutoTopUpForm(_CreditAmounts, forms.Form):
    """Automatic top-up: when the remaining balance falls below ``threshold``, buy
    ``amount`` (both major units of the account's currency; minor units once cleaned)."""

    enabled = forms.BooleanField(label="Top up automatically", required=False)
    threshold = _money_field("When the balance falls below")
    amount = _money_field("Buy")

    def __init__(self, *args, currency: str = "usd", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        code = currency.upper()
        self.fields["threshold"].label = f"When the balance falls below ({code})"
        self.fields["amount"].label = f"Buy ({code})"

    def clean_threshold(self) -> int | None:
        return self._minor("threshold", minimum=Decimal(0), maximum=top_up_limits(self.currency)[1])

    def clean_amount(self) -> int | None:
        minimum, maximum = top_up_limits(self.currency)
        return self._minor("amount", minimum=minimum, maximum=maximum)
