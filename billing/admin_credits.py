"""Admin for credit grants: the list (amounts in each grant's currency, what is left, the
status as customers see it), an add form that goes through ``credit_grant_create`` (staff
type amounts in MAJOR units of the account's currency: 250.50 for $250.50, 1234 for
¥1,234), and the Expire, Void, Retry and Sync actions. Grants are never edited or deleted
here: Stripe lets a grant change only its expiry (the Expire action), and its mirrored
transactions are shown read-only.

Errors: :class:`~billing.services.credits.CreditError` from the service's check is shown
on the form field it names; Stripe's refusals of an action become admin messages.
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from billing.mirror.credits import balance_from, with_totals
from billing.mirror.subscriptions import live_subscription_for_account
from billing.models import Account, CreditBalanceTransaction, CreditGrant, PlanPrice
from billing.money import currency_exponent, format_money, major_to_minor
from billing.services.credit_sync import credit_transactions_sync
from billing.services.credits import (
    CreditError,
    credit_grant_create,
    credit_grant_expire,
    credit_grant_retry,
    credit_grant_validate,
    credit_grant_void,
)

Status = CreditGrant.Status
EMPTY = "\u2014"
# The service's field -> the form's (the currency is the account's).
FORM_FIELD = {"currency": "account", "grant": None}


def _metered_price_choices() -> list[tuple[str, str]]:
    prices = (
        PlanPrice.objects.filter(meter__isnull=False)
        .exclude(stripe_price_id="")
        .select_related("plan")
        .order_by("plan__position", "plan__name", "id")
    )
    return [
        (p.stripe_price_id, f"{p.plan.name}: {p.nickname or p.lookup_key} ({p.currency.upper()})")
        for p in prices
    ]


class CreditGrantAddForm(forms.ModelForm):
    amount = forms.DecimalField(
        label="Credits",
        max_digits=20,
        help_text="In the account's currency, major units: 250.50 is $250.50, 1234 is ¥1,234.",
    )
    purchase_amount = forms.DecimalField(
        label="Purchase price",
        max_digits=20,
        required=False,
        help_text="Paid credits: what the customer is charged, major units (default: the "
        "credits). Promotional credits are free: leave empty.",
    )
    price_ids = forms.MultipleChoiceField(
        label="Only for prices",
        required=False,
        choices=(),
        help_text="Metered prices of the account's plan; none selected: every metered price.",
    )

    class Meta:
        model = CreditGrant
        fields = ["account", "category", "name", "priority", "effective_at", "expires_at"]
        help_texts = {
            "effective_at": "Empty: from now (UTC).",
            "expires_at": "Empty: the credits never expire.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["price_ids"].choices = _metered_price_choices()
        self.minor: dict[str, int | None] = {}

    def _to_minor(self, field: str, currency: str) -> int | None:
        value: Decimal | None = self.cleaned_data.get(field)
        if value is None:
            return None
        places = currency_exponent(currency)
        if value.normalize().as_tuple().exponent < -places:
            self.add_error(
                field,
                f"{currency.upper()} has {places} decimal place{'s' if places != 1 else ''}"
                f"{'' if places else ' (whole units only)'}: {value} cannot be charged.",
            )
            return None
        return major_to_minor(value, currency)

    def clean(self):
        data = super().clean()
        account: Account | None = data.get("account")
        if account is None or self.errors:
            return data
        self.minor = {
            "amount": self._to_minor("amount", account.currency),
            "purchase_amount": self._to_minor("purchase_amount", account.currency),
        }
        if self.errors:
            return data
        try:
            credit_grant_validate(**self.service_arguments())
        except CreditError as exc:
            self.add_error(FORM_FIELD.get(exc.field, exc.field), exc.message)
            return data
        self._check_plan_prices(account, data.get("price_ids") or [])
        return data

    def _check_plan_prices(self, account: Account, price_ids: list[str]) -> None:
        """Prices chosen for a subscribed account are its plan's metered prices."""
        subscription = live_subscription_for_account(account=account) if price_ids else None
        plan = subscription.plan if subscription is not None else None
        if plan is None:
            return
        allowed = set(
            plan.prices.filter(meter__isnull=False).values_list("stripe_price_id", flat=True)
        )
        outside = [price_id for price_id in price_ids if price_id not in allowed]
        if outside:
            self.add_error(
                "price_ids",
                f"Not a metered price of {account}'s plan ({plan.name}): {', '.join(outside)}.",
            )

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "account": data["account"],
            "name": data.get("name") or "",
            "category": data.get("category") or "",
            "amount": self.minor["amount"],
            "price_ids": data.get("price_ids") or (),
            "priority": data.get("priority") if data.get("priority") is not None else 50,
            "effective_at": data.get("effective_at"),
            "expires_at": data.get("expires_at"),
            "purchase_amount": self.minor["purchase_amount"],
        }


class CreditBalanceTransactionInline(admin.TabularInline):
    model = CreditBalanceTransaction
    fields = ["effective_at", "type", "kind", "amount_display", "invoice_id", "stripe_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Amount")
    def amount_display(self, obj: CreditBalanceTransaction) -> str:
        sign = "-" if obj.type == CreditBalanceTransaction.Type.DEBIT else "+"
        return f"{sign}{format_money(obj.amount, obj.currency)}"


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "account", "name", "category", "amount_display", "remaining",
        "status_display", "expires_at",
    ]  # fmt: skip
    list_filter = ["status", "category", "source", "currency"]
    search_fields = ["name", "account__name", "stripe_id", "purchase_invoice_id"]
    list_select_related = ["account"]
    inlines = [CreditBalanceTransactionInline]
    actions = ["expire_now", "void", "retry", "sync_transactions"]
    _shown = [
        "account", "name", "category", "source", "status_display", "amount_display",
        "purchase_display", "remaining", "applied", "expired", "currency", "price_ids",
        "priority", "effective_at", "expires_at", "voided_at", "stripe_id",
        "purchase_invoice_id", "last_error", "created_by", "created_at", "updated_at",
    ]  # fmt: skip

    def get_queryset(self, request):
        return with_totals(super().get_queryset(request))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = CreditGrantAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return [
                "account", "category", "amount", "purchase_amount", "name", "priority",
                "effective_at", "expires_at", "price_ids",
            ]  # fmt: skip
        return self._shown

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self._shown

    def get_inlines(self, request, obj=None):
        return self.inlines if obj is not None else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- columns ------------------------------------------------------------------

    def _balance(self, obj: CreditGrant):
        return balance_from(obj) if hasattr(obj, "t_debited") else None

    @admin.display(description="Credits", ordering="amount")
    def amount_display(self, obj: CreditGrant) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="Purchase price")
    def purchase_display(self, obj: CreditGrant) -> str:
        if obj.purchase_amount is None:
            return "free (promotional)"
        return format_money(obj.purchase_amount, obj.currency)

    @admin.display(description="Remaining")
    def remaining(self, obj: CreditGrant) -> str:
        balance = self._balance(obj)
        if balance is None or obj.status != Status.ACTIVE:
            return EMPTY
        return format_money(balance.ledger_balance, obj.currency)

    @admin.display(description="Applied to invoices")
    def applied(self, obj: CreditGrant) -> str:
        balance = self._balance(obj)
        return format_money(balance.applied, obj.currency) if balance else EMPTY

    @admin.display(description="Expired or voided unused")
    def expired(self, obj: CreditGrant) -> str:
        balance = self._balance(obj)
        return format_money(balance.expired_amount, obj.currency) if balance else EMPTY

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: CreditGrant) -> str:
        balance = self._balance(obj)
        label = balance.status_label if balance else obj.get_status_display()
        if obj.last_error and obj.status != Status.ACTIVE:
            return f"{label} ({obj.last_error[:120]})"
        return label

    # --- add ------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            made = credit_grant_create(**form.service_arguments(), created_by=request.user)
        except CreditError as exc:  # changed since the form's check (a race): say so
            messages.error(request, exc.message)
            return
        for field in CreditGrant._meta.concrete_fields:
            setattr(obj, field.attname, getattr(made, field.attname))
        made.refresh_from_db()
        if made.status in (Status.PENDING, Status.AWAITING_PAYMENT):
            what = (
                "its purchase invoice is being charged"
                if made.category == CreditGrant.Category.PAID
                else "it is being created in Stripe"
            )
            messages.info(request, f"Grant #{made.pk} is recorded; {what}.")

    def save_related(self, request, form, formsets, change):
        return  # nothing related is edited here

    def log_addition(self, request, obj, message):
        return super().log_addition(request, obj, message) if obj.pk is not None else None

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:  # refused by the service: its message is shown
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    # --- actions ------------------------------------------------------------------

    def _each(self, request, queryset, call, done: str) -> None:
        for grant in queryset.select_related("account"):
            try:
                result = call(grant)
            except CreditError as exc:
                messages.error(request, f"{grant.name} (#{grant.pk}): {exc.message}")
            else:
                messages.success(request, f"{grant.name} (#{grant.pk}): {done(result)}")

    @admin.action(description="Expire the remaining credits now", permissions=["change"])
    def expire_now(self, request, queryset):
        self._each(request, queryset, lambda g: credit_grant_expire(grant=g), lambda g: "expired.")

    @admin.action(description="Void (only if none of it was applied)", permissions=["change"])
    def void(self, request, queryset):
        self._each(request, queryset, lambda g: credit_grant_void(grant=g), lambda g: "voided.")

    @admin.action(description="Retry the Stripe calls (failed or stuck)", permissions=["change"])
    def retry(self, request, queryset):
        def outcome(grant: CreditGrant) -> str:
            text = grant.get_status_display().lower()
            return f"{text} ({grant.last_error})" if grant.last_error else f"{text}."

        waiting = queryset.exclude(status__in=[Status.ACTIVE, Status.VOIDED])
        self._each(request, waiting, lambda g: credit_grant_retry(grant=g), outcome)

    @admin.action(description="Sync credit transactions from Stripe", permissions=["change"])
    def sync_transactions(self, request, queryset):
        import stripe

        account_ids = {grant.account_id for grant in queryset}
        for account in Account.objects.filter(pk__in=account_ids).order_by("name"):
            try:
                new = credit_transactions_sync(account=account)
            except stripe.StripeError as exc:
                messages.error(request, f"{account}: Stripe refused the sync: {exc}")
            else:
                messages.success(request, f"{account}: {new} new credit transaction(s).")
