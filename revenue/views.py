"""Staff pages in Django admin: the revenue waterfall, its chart and its CSV.

Mounted under ``/admin/revenue/`` (``config.urls``) and wrapped in
``admin.site.admin_view``, so only active staff reach them; viewing also needs the
``billing.view_account`` permission (finance staff see every account's revenue).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.mirror.customers import accounts_with_stripe_customer
from billing.models import Account
from billing.money import currency_exponent, format_money
from revenue.export import waterfall_csv
from revenue.selectors import RevenueReport, revenue_report
from revenue.waterfall import COLUMN_LABELS, columns_for, has_credit_activity

PERMISSION = "billing.view_account"


def _check(request: HttpRequest) -> None:
    if not (request.user.is_staff and request.user.has_perm(PERMISSION)):
        raise PermissionDenied


def _filters(request: HttpRequest) -> tuple[Account | None, str | None]:
    raw_account = request.GET.get("account", "")
    account = Account.objects.filter(pk=int(raw_account)).first() if raw_account.isdigit() else None
    currency = request.GET.get("currency", "").strip().lower() or None
    if currency is not None and not (len(currency) == 3 and currency.isalpha()):
        currency = None
    return account, currency


def _report(request: HttpRequest) -> RevenueReport:
    account, currency = _filters(request)
    return revenue_report(account=account, currency=currency, now=timezone.now())


@require_GET
def waterfall_page(request: HttpRequest):
    _check(request)
    report = _report(request)
    account, currency = _filters(request)
    tables = []
    for code in report.currencies:
        # The credit columns only for a currency with credit activity.
        columns = columns_for(report.by_currency[code])
        rows = [
            {
                "month": fig.month,
                "cells": [
                    {
                        "column": c,
                        "minor": fig.as_row(columns)[c],
                        "text": format_money(fig.as_row(columns)[c], code),
                    }
                    for c in columns
                ],
            }
            for fig in report.by_currency[code]
        ]
        chart = {
            "currency": code,
            "exponent": currency_exponent(code),
            "months": [fig.month for fig in report.by_currency[code]],
            "series": {
                c: [fig.as_row(columns)[c] for fig in report.by_currency[code]] for c in columns
            },
            "labels": {c: COLUMN_LABELS[c] for c in columns},
        }
        tables.append(
            {
                "currency": code,
                "columns": [(c, COLUMN_LABELS[c]) for c in columns],
                "credits": has_credit_activity(report.by_currency[code]),
                "rows": rows,
                "chart": chart,
                "chart_id": f"chart-{code}",
                "chart_data_id": f"chart-{code}-data",
            }
        )
    query = request.GET.urlencode()
    context = {
        **admin.site.each_context(request),
        "title": "Revenue recognition",
        "subtitle": str(account) if account else "All accounts",
        "report": report,
        "tables": tables,
        "accounts": accounts_with_stripe_customer().order_by("name", "pk"),
        "selected_account": account.pk if account else None,
        "selected_currency": currency or "",
        "csv_query": f"?{query}" if query else "",
        "credit_columns_shown": any(table["credits"] for table in tables),
    }
    return TemplateResponse(request, "admin/revenue/waterfall.html", context)


@require_GET
def waterfall_csv_view(request: HttpRequest) -> HttpResponse:
    _check(request)
    report = _report(request)
    account, currency = _filters(request)
    name = "revenue-waterfall"
    if account is not None:
        name += f"-account-{account.pk}"
    if currency:
        name += f"-{currency}"
    response = HttpResponse(waterfall_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response
