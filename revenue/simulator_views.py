"""Staff pages in Django admin: the plan simulator for any account, and the catalog-wide
"what if we changed this price".

Mounted under ``/admin/revenue/`` (``revenue.urls``) and wrapped in
``admin.site.admin_view`` like the revenue waterfall, so only active staff reach them;
both also need ``billing.view_account`` (they show every account's money).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from billing.models import Account, PlanPrice
from revenue.views import _check
from usage.selectors.simulator import WhatIfError, plan_simulation, price_what_if


def _table_context(simulation) -> dict:
    """What ``dashboards/_simulator_table.html`` reads: periods oldest first."""
    rows = [{"plan": plan, "closed": tuple(reversed(plan.closed))} for plan in simulation.plans]
    return {
        "simulation": simulation,
        "currency": simulation.currency,
        "periods": tuple(reversed(simulation.closed_periods)),
        "rows": rows,
        "actual_closed": tuple(reversed(simulation.actual.closed)),
        "current_on_catalog": any(plan.is_current for plan in simulation.plans),
    }


@require_GET
def account_simulator_page(request: HttpRequest):
    """Any account's usage of its last closed periods and this period's projection on
    every plan priced in its currency: what the customer sees on their simulator."""
    _check(request)
    raw = request.GET.get("account", "")
    account = Account.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    context = {
        **admin.site.each_context(request),
        "title": "Plan simulator",
        "subtitle": str(account) if account else None,
        "accounts": Account.objects.order_by("name", "pk").only("pk", "name"),
        "account": account,
        "selected_account": account.pk if account else None,
    }
    if account is not None:
        simulation = plan_simulation(account=account)
        context["simulation"] = simulation
        if simulation is not None:
            context.update(_table_context(simulation))
    return TemplateResponse(request, "admin/simulator/account.html", context)


class WhatIfForm(forms.Form):
    lookup_key = forms.ChoiceField(label="Price (lookup key)")
    unit_amount_decimal = forms.DecimalField(
        label="New unit amount",
        required=False,
        min_value=Decimal(0),
        max_digits=24,
        decimal_places=12,
        help_text="In the price's minor unit (cents for USD), decimals allowed: 0.12 is "
        "0.12¢. For a per-unit price (a package price keeps its package size).",
    )
    tiers = forms.CharField(
        label="New tiers (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text='Stripe\'s tier list in minor units: [{"up_to": 1000, "unit_amount_decimal": '
        '"5", "flat_amount": 1000}, {"up_to": "inf", "unit_amount_decimal": "1"}]',
    )
    tiers_mode = forms.ChoiceField(
        label="Tiers mode",
        required=False,
        choices=[
            ("", "as the price has it (else graduated)"),
            ("graduated", "graduated"),
            ("volume", "volume"),
        ],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lookup_key"].choices = [
            (pp.lookup_key, f"{pp.lookup_key} — {pp.plan.name}, {pp.currency.upper()}")
            for pp in PlanPrice.objects.select_related("plan").order_by("plan__position", "id")
        ]

    def clean(self):
        data = super().clean()
        has_amount = data.get("unit_amount_decimal") is not None
        has_tiers = bool((data.get("tiers") or "").strip())
        if has_amount == has_tiers:
            raise forms.ValidationError("Give either a new unit amount or new tiers.")
        return data


@require_GET
def price_what_if_page(request: HttpRequest):
    """Staff enter a price and new amounts; every account on a plan with that price:
    its last closed period's cost now and with the change, totals per currency."""
    _check(request)
    form = WhatIfForm(request.GET or None)
    result = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            result = price_what_if(
                lookup_key=data["lookup_key"],
                unit_amount_decimal=data.get("unit_amount_decimal"),
                tiers=(data.get("tiers") or "").strip() or None,
                tiers_mode=data.get("tiers_mode") or None,
            )
        except WhatIfError as exc:
            form.add_error(None, str(exc))
    status = 400 if form.is_bound and form.errors else 200
    context = {
        **admin.site.each_context(request),
        "title": "What if we changed this price",
        "form": form,
        "result": result,
    }
    return TemplateResponse(request, "admin/simulator/what_if.html", context, status=status)
