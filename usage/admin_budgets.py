"""Admin for budgets and plan budget policies (issue 16).

Staff edits of a budget go through ``usage.services.budgets.budget_set`` with source
``staff`` (staff may set a limit above the plan's maximum); deletions through
``budget_delete``. Limits are integers as stored: units of the meter, or minor units
(cents) of the currency for spend; the list shows them formatted. Django's model
permissions (add / change / delete budget, plan budget policy) gate each action, as in
the rest of the admin. Plan budget policies have their own admin: billing's Plan admin
cannot import usage for an inline.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from usage.models import Budget, PlanBudgetPolicy
from usage.services.budgets import (
    budget_delete,
    budget_set,
    budget_validate,
    limit_text,
    warn_levels_clean,
)

LIMIT_HELP = "Units of the meter, or minor units of the currency for spend (25050 = $250.50)"


class WarnLevelsField(forms.CharField):
    """``50, 80, 100`` in the form, ``[50, 80, 100]`` in the model."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(level) for level in value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        parts = [p.strip().rstrip("%") for p in text.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise ValidationError(
                "Enter whole percentages separated by commas, like 50, 80, 100.",
                code="warn_levels_invalid",
            )
        return [int(p) for p in parts]


class BudgetAdminForm(forms.ModelForm):
    warn_levels = WarnLevelsField(help_text="Up to 5 percentages of the limit, like 50, 80, 100")

    class Meta:
        model = Budget
        fields = ["account", "kind", "meter", "limit", "warn_levels", "hard_cap"]
        help_texts = {"limit": LIMIT_HELP}

    def clean(self):
        data = super().clean()
        account = data.get("account") or getattr(self.instance, "account", None)
        if account is None or self.errors:
            return data
        try:
            budget_validate(
                account=account,
                kind=data.get("kind", self.instance.kind),
                meter=data.get("meter", self.instance.meter),
                limit=data.get("limit"),
                warn_levels=data.get("warn_levels") or [],
            )
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return data

    def _post_clean(self):
        # The currency and the constraints are the service's (budget_set): the instance is
        # not built nor validated here; save_model passes cleaned_data to the service.
        pass


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    form = BudgetAdminForm
    list_display = ["account", "kind", "meter", "limit_shown", "levels", "hard_cap", "source"]
    list_filter = ["kind", "source", "hard_cap"]
    search_fields = ["account__name"]
    list_select_related = ["account", "meter"]
    autocomplete_fields = ["account"]
    readonly_fields = ["currency", "source", "updated_by", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # another meter or kind is another budget: add that one
            return ["account", "kind", "meter", *self.readonly_fields]
        return self.readonly_fields

    @admin.display(description="Limit", ordering="limit")
    def limit_shown(self, budget: Budget) -> str:
        return limit_text(
            kind=budget.kind, limit=budget.limit, meter=budget.meter, currency=budget.currency
        )

    @admin.display(description="Warn levels")
    def levels(self, budget: Budget) -> str:
        return ", ".join(f"{level}%" for level in budget.warn_levels)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = budget_set(
            account=data.get("account") or obj.account,
            kind=data.get("kind") or obj.kind,
            meter=data.get("meter", obj.meter),
            limit=data["limit"],
            warn_levels=data["warn_levels"],
            hard_cap=data["hard_cap"],
            user=request.user,
            source=Budget.Source.STAFF,
        )
        for field in Budget._meta.concrete_fields:  # the admin's log and redirect read obj
            setattr(obj, field.attname, getattr(saved, field.attname))

    def save_related(self, request, form, formsets, change):
        return

    def delete_model(self, request, obj):
        budget_delete(account=obj.account, budget_id=obj.pk, user=request.user, staff=True)

    def delete_queryset(self, request, queryset):
        for budget in queryset.select_related("account"):
            self.delete_model(request, budget)


class PlanBudgetPolicyForm(forms.ModelForm):
    default_warn_levels = WarnLevelsField(
        help_text="Up to 5 percentages of the limit, like 50, 80, 100"
    )

    class Meta:
        model = PlanBudgetPolicy
        fields = [
            "plan",
            "kind",
            "meter",
            "currency",
            "default_limit",
            "default_warn_levels",
            "default_hard_cap",
            "max_limit",
        ]
        help_texts = {
            "default_limit": f"{LIMIT_HELP}; empty: no default budget",
            "max_limit": f"The most a customer may set; empty: no maximum. {LIMIT_HELP}",
            "currency": "Spend policies only: the subscriptions' currency, like usd",
        }

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].strip().lower()

    def clean_default_warn_levels(self) -> list[int]:
        try:
            return warn_levels_clean(self.cleaned_data["default_warn_levels"])
        except ValidationError as exc:
            raise ValidationError(exc.error_dict["warn_levels"]) from exc

    def clean(self):
        data = super().clean()
        for field in ("default_limit", "max_limit"):
            if data.get(field) is not None and data[field] <= 0:
                self.add_error(field, ValidationError("Enter a limit above zero.", "limit"))
        default, most = data.get("default_limit"), data.get("max_limit")
        if default is not None and most is not None and default > most:
            self.add_error("default_limit", "The default may not be above the maximum.")
        kind, meter, currency = data.get("kind"), data.get("meter"), data.get("currency")
        if kind == Budget.Kind.UNITS and (meter is None or currency):
            self.add_error("meter", "A units policy has a meter and no currency.")
        if kind == Budget.Kind.SPEND and (meter is not None or not currency):
            self.add_error("currency", "A spend policy has a currency and no meter.")
        return data


@admin.register(PlanBudgetPolicy)
class PlanBudgetPolicyAdmin(admin.ModelAdmin):
    form = PlanBudgetPolicyForm
    list_display = ["plan", "kind", "meter", "default_shown", "levels", "default_hard_cap",
                    "maximum_shown"]  # fmt: skip
    list_filter = ["plan", "kind"]
    list_select_related = ["plan", "meter"]

    def _text(self, policy: PlanBudgetPolicy, limit: int | None) -> str:
        if limit is None:
            return "\u2014"
        return limit_text(
            kind=policy.kind, limit=limit, meter=policy.meter, currency=policy.currency
        )

    @admin.display(description="Default limit")
    def default_shown(self, policy: PlanBudgetPolicy) -> str:
        return self._text(policy, policy.default_limit)

    @admin.display(description="Customer maximum")
    def maximum_shown(self, policy: PlanBudgetPolicy) -> str:
        return self._text(policy, policy.max_limit)

    @admin.display(description="Warn levels")
    def levels(self, policy: PlanBudgetPolicy) -> str:
        return ", ".join(f"{level}%" for level in policy.default_warn_levels)
