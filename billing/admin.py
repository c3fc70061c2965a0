"""Django admin for staff: accounts (with this period's invoice preview), meters
(saving pushes to Stripe), plans with their prices, and a sync from Stripe.

The admin only calls services and selectors; Stripe failures become admin messages
or a message on the page, never a 500.
"""

from decimal import Decimal

import stripe
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from billing.mirror.prices import mirrored_price_spec
from billing.mirror.subscriptions import live_subscription_for_account
from billing.models import Account, Membership, Meter, Plan, PlanPrice
from billing.money import currency_exponent, format_money
from billing.pricing import PriceSpec
from billing.services.meters import MeterConflict, meter_push_to_stripe
from billing.services.preview import describe_stripe_error, invoice_preview
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import (
    SubscriptionError,
    plans_priced_in,
    subscription_change_plan,
    subscription_create,
)

EMPTY = "\u2014"


# --- sync from Stripe -------------------------------------------------------------


def _run_sync(request: HttpRequest) -> None:
    try:
        report = stripe_sync_everything()
    except stripe.StripeError as exc:
        messages.error(request, f"Sync from Stripe failed. {describe_stripe_error(exc)}")
        return
    messages.success(request, f"Synced from Stripe: {report.summary()}.")
    for error in report.errors:
        messages.warning(request, f"Not synced: {error}")


@require_POST
def stripe_sync_view(request: HttpRequest):
    """POST-only admin view behind the "Sync everything from Stripe" buttons."""
    if not (request.user.has_perm("billing.change_meter") and request.user.is_staff):
        raise PermissionDenied
    _run_sync(request)
    back = request.POST.get("next", "")
    if not back.startswith(reverse("admin:index")) or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("admin:billing_meter_changelist")
    return HttpResponseRedirect(back)


# --- accounts ---------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "status",
        "currency",
        "stripe_customer_id",
        "current_plan",
        "created_at",
        "view_as_customer",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["name", "billing_email", "djstripe_customers__id"]
    inlines = [MembershipInline]
    actions = ["subscribe_to_plan", "sync_everything_from_stripe"]
    readonly_fields = [
        "view_as_customer",
        "stripe_customer_id",
        "current_plan",
        "subscription_display",
        "current_period",
        "status_changed_at",
        "past_due_since",
        "created_at",
        "slack_webhook_masked",
    ]
    fieldsets = [
        (None, {"fields": ["name", "billing_email", "currency", "status", "view_as_customer"]}),
        (
            "Stripe",
            {
                "fields": [
                    "stripe_customer_id",
                    "current_plan",
                    "subscription_display",
                    "current_period",
                ]
            },
        ),
        ("Status history", {"fields": ["status_changed_at", "past_due_since", "created_at"]}),
        ("Alerts", {"fields": ["slack_webhook_masked"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("djstripe_customers")

    def get_readonly_fields(self, request, obj=None):
        # Stripe cannot change an ongoing subscription's currency
        # (https://support.stripe.com/questions/setting-a-customers-default-currency):
        # once the account has a subscription its currency is fixed here too.
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and live_subscription_for_account(account=obj) is not None:
            fields.append("currency")
        return fields

    @admin.display(description="Slack webhook")
    def slack_webhook_masked(self, obj: Account) -> str:
        """Host and last 4 characters only (the path is the secret); set on the alerts page."""
        url = obj.slack_webhook_url
        return f"{url.split('/', 3)[:3][-1]}/…{url[-4:]}" if url else EMPTY

    @admin.display(description="Dashboard")
    def view_as_customer(self, obj: Account) -> str:
        """The customer's dashboard as they see it (staff need ``billing.view_account``)."""
        if obj.pk is None:
            return EMPTY
        url = f"{reverse('dashboards:home')}?account={obj.pk}"
        return format_html('<a href="{}">View dashboard as customer</a>', url)

    @admin.display(description="Stripe customer")
    def stripe_customer_id(self, obj: Account) -> str:
        customers = [c for c in obj.djstripe_customers.all() if c.date_purged is None]
        if not customers:
            return EMPTY
        customer = max(customers, key=lambda c: c.created or c.djstripe_created)
        url = reverse("admin:djstripe_customer_change", args=[customer.pk])
        return format_html('<a href="{}">{}</a>', url, customer.id)

    @admin.display(description="Current plan")
    def current_plan(self, obj: Account) -> str:
        subscription = live_subscription_for_account(account=obj)
        if subscription is None:
            return EMPTY
        plan = subscription.plan
        return plan.name if plan else f"(not in the catalog: {subscription.id})"

    @admin.display(description="Subscription")
    def subscription_display(self, obj: Account) -> str:
        subscription = live_subscription_for_account(account=obj)
        if subscription is None:
            return EMPTY
        url = reverse("admin:djstripe_subscription_change", args=[subscription.mirror_pk])
        return format_html('<a href="{}">{}</a> ({})', url, subscription.id, subscription.status)

    @admin.display(description="Current period")
    def current_period(self, obj: Account) -> str:
        subscription = live_subscription_for_account(account=obj)
        period = subscription.current_period if subscription else None
        if period is None:
            return EMPTY
        start, end = period
        return f"{start:%Y-%m-%d %H:%M} \u2013 {end:%Y-%m-%d %H:%M} UTC"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        account = self.get_object(request, unquote(object_id))
        extra_context = extra_context or {}
        if account is not None:
            # Lazy: only computed (calling Stripe) when the page is actually rendered.
            extra_context["invoice_preview"] = SimpleLazyObject(
                lambda: invoice_preview(account=account)
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "stripe_sync_url": reverse("admin:billing_sync")}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Subscribe to plan\u2026 (or change plan)", permissions=["change"])
    def subscribe_to_plan(self, request, queryset):
        """Pick a plan on an intermediate page, then subscribe each selected account
        (creating its Stripe customer) or move its subscription to that plan."""
        plans = Plan.objects.filter(active=True).exclude(stripe_product_id="")
        # Only plans priced in every selected account's currency (one per account).
        for code in set(queryset.values_list("currency", flat=True)):
            plans = plans.filter(pk__in=plans_priced_in(code))
        plan_pk = request.POST.get("plan", "")
        plan = plans.filter(pk=int(plan_pk)).first() if plan_pk.isdigit() else None
        if "apply" not in request.POST or plan is None:
            context = {
                **self.admin_site.each_context(request),
                "title": "Subscribe to plan",
                "opts": self.model._meta,
                "queryset": queryset,
                "plans": plans,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "missing_plan": "apply" in request.POST,
            }
            return TemplateResponse(request, "admin/billing/account/subscribe_plan.html", context)
        for account in queryset:
            self._subscribe(request, account=account, plan=plan)
        return None

    def _subscribe(self, request, *, account: Account, plan: Plan) -> None:
        current = live_subscription_for_account(account=account)
        try:
            if current is None:
                subscription = subscription_create(account=account, plan=plan)
                verb = "subscribed to"
            elif current.plan == plan:
                messages.info(request, f"{account} is already on {plan}.")
                return
            else:
                subscription = subscription_change_plan(account=account, plan=plan)
                verb = "moved to"
        except SubscriptionError as exc:
            messages.error(request, f"{account}: {exc}")
        except stripe.StripeError as exc:
            messages.error(request, f"{account}: {describe_stripe_error(exc)}")
        else:
            messages.success(request, f"{account} {verb} {plan} ({subscription.id}).")

    @admin.action(
        description="Sync everything from Stripe (all accounts, meters, plans)",
        permissions=["change"],
    )
    def sync_everything_from_stripe(self, request, queryset):
        _run_sync(request)


# --- meters -----------------------------------------------------------------------


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    list_display = ["event_name", "display_name", "aggregation", "stripe_id", "status"]
    list_filter = ["aggregation", "status"]
    search_fields = ["event_name", "display_name", "stripe_id"]
    actions = ["push_to_stripe"]
    fields = [
        "event_name",
        "display_name",
        "unit_label",
        "aggregation",
        "customer_payload_key",
        "value_payload_key",
        "stripe_id",
        "status",
        "synced_at",
        "created_at",
    ]
    # Stripe lets only display_name change once a meter exists there.
    _fixed_in_stripe = ["event_name", "aggregation", "customer_payload_key", "value_payload_key"]

    def get_readonly_fields(self, request, obj=None):
        readonly = ["stripe_id", "status", "synced_at", "created_at"]
        if obj is not None and obj.stripe_id:
            readonly = self._fixed_in_stripe + readonly
        return readonly

    def get_urls(self):
        sync = path("sync/", self.admin_site.admin_view(stripe_sync_view), name="billing_sync")
        return [sync, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "stripe_sync_url": reverse("admin:billing_sync")}
        return super().changelist_view(request, extra_context)

    def _push(self, request, meter: Meter) -> bool:
        try:
            meter_push_to_stripe(meter=meter)
        except MeterConflict as exc:
            messages.error(request, f"Saved in Meterdesk only, Stripe was not changed: {exc}")
        except stripe.StripeError as exc:
            messages.error(
                request,
                f"Meter \u201c{meter.event_name}\u201d saved in Meterdesk only, not in Stripe. "
                f"{describe_stripe_error(exc)} Save it again to retry.",
            )
        else:
            messages.success(
                request, f"Meter \u201c{meter.event_name}\u201d is in Stripe as {meter.stripe_id}."
            )
            return True
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and obj.stripe_id and form.changed_data == []:
            return
        self._push(request, obj)

    @admin.action(description="Push selected meters to Stripe")
    def push_to_stripe(self, request, queryset):
        for meter in queryset:
            self._push(request, meter)


# --- plans ------------------------------------------------------------------------


def _amount(amount: Decimal, currency: str) -> str:
    """A Decimal amount in minor units for display; sub-minor amounts stay exact."""
    if amount == amount.to_integral_value():
        return format_money(int(amount), currency)
    major = amount.scaleb(-currency_exponent(currency))
    return f"{major:f} {currency.upper()}"


def _tier_text(spec: PriceSpec) -> list[str]:
    rows = []
    lower = 1
    for tier in spec.tiers:
        bound = f"{lower:,}\u2013{tier.up_to:,}" if tier.up_to else f"{lower:,}+"
        parts = []
        if tier.unit_amount or not tier.flat_amount:
            parts.append(
                "free"
                if not tier.unit_amount
                else f"{_amount(tier.unit_amount, spec.currency)} per unit"
            )
        if tier.flat_amount:
            parts.append(f"{_amount(tier.flat_amount, spec.currency)} flat")
        rows.append(f"{bound}: {' + '.join(parts)}")
        lower = (tier.up_to or 0) + 1
    return rows


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 0
    can_delete = False
    fields = [
        "lookup_key",
        "nickname",
        "meter",
        "stripe_price_id",
        "scheme",
        "tiers_summary",
        "included",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # prices come from the catalog file (billing_catalog apply)

    def _spec(self, obj: PlanPrice) -> PriceSpec | None:
        if not obj.stripe_price_id:
            return None
        return mirrored_price_spec(price_id=obj.stripe_price_id)

    @admin.display(description="Scheme")
    def scheme(self, obj: PlanPrice) -> str:
        spec = self._spec(obj)
        if spec is None:
            return "not mirrored"
        if spec.billing_scheme == "tiered":
            scheme = f"{spec.tiers_mode} tiers"
        elif spec.transform_divide_by:
            scheme = f"package of {spec.transform_divide_by:,} (round {spec.transform_round})"
        else:
            scheme = "per unit"
        return f"{scheme}, {spec.usage_type}, per {spec.interval}"

    @admin.display(description="Tiers / amount")
    def tiers_summary(self, obj: PlanPrice) -> str:
        spec = self._spec(obj)
        if spec is None:
            return EMPTY
        if spec.billing_scheme == "per_unit":
            per = f"{spec.transform_divide_by:,} units" if spec.transform_divide_by else "unit"
            return f"{_amount(spec.unit_amount_decimal, spec.currency)} per {per}"
        return format_html_join(mark_safe("<br>"), "{}", ((row,) for row in _tier_text(spec)))

    @admin.display(description="Included units")
    def included(self, obj: PlanPrice) -> str:
        spec = self._spec(obj)
        return f"{spec.included_units:,}" if spec is not None else EMPTY


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "active", "stripe_product_id", "price_count", "position"]
    list_filter = ["active"]
    search_fields = ["name", "key", "stripe_product_id"]
    readonly_fields = ["key", "stripe_product_id"]
    inlines = [PlanPriceInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("prices")

    @admin.display(description="Prices")
    def price_count(self, obj: Plan) -> int:
        return len(obj.prices.all())


# Registers the guarded Customer admin, the dahlia Invoice admin and the event inbox,
# then unregisters the dj-stripe admins nobody here uses.
from billing import admin_customers, admin_events, admin_invoices  # noqa: E402, F401, I001
from billing import admin_djstripe  # noqa: E402, F401
from billing import admin_credits  # noqa: E402, F401
