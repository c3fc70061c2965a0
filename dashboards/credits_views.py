"""The Credits page: the account's credit grants (prepaid and promotional) with what is
left of each, the balance history mirrored from Stripe, buying a top-up and the
automatic top-up settings.

A top-up is a purchase first (``billing.services.credits.credit_grant_create`` with
``source=top_up``): an invoice for the amount; the credits are granted once it is paid
and show "Awaiting payment" until then. Only owners and billing members (and staff
viewing as the customer with the permissions below) may buy or change the automatic
top-up; members see the page without the forms and get a 403 for a POST, and viewers get
a 403 for the page too when the operator hides amounts from them
(``BILLING_VIEWERS_SEE_AMOUNTS=false``).

Plain forms (no HTMX): errors are an HTTP 400 with the page and the form re-rendered,
each error under its field with its code; a change redirects back to the page.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing.mirror.credits import GrantBalance, account_grants
from billing.mirror.subscriptions import subscription_state_for_account
from billing.models_credits import AutoTopUp, CreditBalanceTransaction, CreditGrant
from billing.money import currency_exponent, format_money
from billing.selectors import user_manages_billing
from billing.services.credits import CreditError, credit_grant_create
from dashboards.access import (
    account_for_request,
    account_url,
    render_not_found,
    require_amounts,
    viewing_as,
)
from dashboards.forms import AutoTopUpForm, TopUpForm, top_up_limits
from usage.selectors.credit_balance import CreditBalance, credit_balance, credit_transactions
from usage.selectors.summaries import period_summary
from usage.services.auto_top_up import auto_top_up_set

TOP_UP_PERMISSIONS = ("billing.add_creditgrant",)
AUTO_TOP_UP_PERMISSIONS = ("billing.add_autotopup", "billing.change_autotopup")
CATEGORY_LABELS = {"paid": "Prepaid", "promotional": "Promotional"}
# The service's fields as the top-up form names them.
TOP_UP_FIELDS = {"amount": "amount", "purchase_amount": "amount"}


@dataclass(frozen=True)
class GrantRow:
    """One grant as the page lists it."""

    grant: GrantBalance
    remaining: int | None  # live: after this period's usage so far (None: not active)
    usable_this_period: bool

    @property
    def category_label(self) -> str:
        return CATEGORY_LABELS.get(self.grant.category, self.grant.category)

    @property
    def awaiting_payment(self) -> bool:
        return self.grant.status == CreditGrant.Status.AWAITING_PAYMENT


@dataclass(frozen=True)
class TransactionRow:
    transaction: CreditBalanceTransaction
    text: str
    signed: int  # minor units, negative for a debit


def transaction_text(t: CreditBalanceTransaction) -> str:
    """What a mirrored balance transaction did, for a customer."""
    invoice = t.invoice_id or "an invoice"
    return {
        "credits_granted": "Credits granted",
        "credits_applied": f"Applied to invoice {invoice}",
        "credits_expired": "Expired unused",
        "credits_voided": "Voided",
        "credits_application_invoice_voided": f"Given back: invoice {invoice} was voided",
    }.get(t.kind, t.get_type_display())


def grant_rows(grants: list[GrantBalance], balance: CreditBalance | None) -> list[GrantRow]:
    live = {line.grant.pk: line for line in balance.grants} if balance else {}
    rows = []
    for grant in grants:
        line = live.get(grant.pk)
        if line is not None:
            remaining, usable = line.remaining, line.usable_this_period
        elif grant.status == CreditGrant.Status.ACTIVE:
            remaining, usable = grant.ledger_balance, False
        else:
            remaining, usable = None, False
        rows.append(GrantRow(grant=grant, remaining=remaining, usable_this_period=usable))
    return rows


def _account(request: HttpRequest, staff_permissions: tuple[str, ...] = ()):
    account = account_for_request(request, staff_permissions=staff_permissions)
    if account is None:
        raise Http404("no account")
    return account


def _may_manage(request: HttpRequest, account) -> bool:
    if viewing_as(request) is not None:
        return all(
            request.user.has_perm(p) for p in (*TOP_UP_PERMISSIONS, *AUTO_TOP_UP_PERMISSIONS)
        )
    return user_manages_billing(account=account, user=request.user)


def _require_manager(request: HttpRequest, account) -> None:
    if viewing_as(request) is not None:
        return  # account_for_request checked the staff permissions
    if not user_manages_billing(account=account, user=request.user):
        raise PermissionDenied("Only owners and billing members may buy credits.")


def _major(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-currency_exponent(currency))


def _auto_initial(settings: AutoTopUp | None, currency: str) -> dict:
    if settings is None:
        return {"enabled": False}
    return {
        "enabled": settings.enabled,
        "threshold": _major(settings.threshold, currency),
        "amount": _major(settings.amount, currency),
    }


def _context(request: HttpRequest, account, *, top_up_form=None, auto_form=None) -> dict:
    currency = account.currency
    state = subscription_state_for_account(account=account)
    summary = period_summary(account=account, state=state) if state else None
    balance = (
        credit_balance(account=account, summary=summary)
        if summary is not None and not summary.closed
        else None
    )
    settings = AutoTopUp.objects.filter(account=account).first()
    may_manage = _may_manage(request, account)
    transactions = credit_transactions(account=account)
    return {
        "account": account,
        "currency": currency,
        "summary": summary,
        "credits": balance,
        "grants": grant_rows(account_grants(account=account), balance),
        "transactions": [
            TransactionRow(
                transaction=t,
                text=transaction_text(t),
                signed=-t.amount if t.type == CreditBalanceTransaction.Type.DEBIT else t.amount,
            )
            for t in transactions
        ],
        "auto_top_up": settings,
        "may_manage": may_manage,
        "top_up_form": (top_up_form or TopUpForm(currency=currency)) if may_manage else None,
        "auto_form": (
            auto_form or AutoTopUpForm(initial=_auto_initial(settings, currency), currency=currency)
        )
        if may_manage
        else None,
        "top_up_min": top_up_limits(currency)[0],
        "top_up_max": top_up_limits(currency)[1],
    }


def _respond(request: HttpRequest, context: dict, *, status: int = 200) -> HttpResponse:
    return render(request, "dashboards/credits.html", context, status=status)


@require_GET
@login_required
@render_not_found
def credits(request: HttpRequest) -> HttpResponse:
    account = _account(request)
    require_amounts(request, account)  # viewers, if the operator hides amounts from them
    return _respond(request, _context(request, account))


@require_POST
@login_required
@render_not_found
def credits_top_up(request: HttpRequest) -> HttpResponse:
    """Buy prepaid credits: a paid grant awaiting payment of the same amount."""
    account = _account(request, TOP_UP_PERMISSIONS)
    _require_manager(request, account)
    form = TopUpForm(request.POST, currency=account.currency)
    if form.is_valid():
        amount = form.cleaned_data["amount"]
        try:
            credit_grant_create(
                account=account,
                name="Top-up",
                category=CreditGrant.Category.PAID,
                amount=amount,
                currency=account.currency,
                source=CreditGrant.Source.TOP_UP,
                purchase_amount=amount,
                created_by=request.user,
            )
        except CreditError as exc:
            field = TOP_UP_FIELDS.get(exc.field or "")
            form.add_error(field, ValidationError(exc.message, code=exc.code))
    if form.errors:
        context = _context(request, account, top_up_form=form)
        return _respond(request, context, status=400)
    messages.success(
        request,
        f"Top-up of {format_money(amount, account.currency)} ordered: we send an invoice for "
        "it, and the credits are added as soon as it is paid.",
    )
    return redirect(account_url(request, "dashboards:credits"))


@require_POST
@login_required
@render_not_found
def credits_auto_top_up(request: HttpRequest) -> HttpResponse:
    """Save the automatic top-up settings."""
    account = _account(request, AUTO_TOP_UP_PERMISSIONS)
    _require_manager(request, account)
    form = AutoTopUpForm(request.POST, currency=account.currency)
    if form.is_valid():
        data = form.cleaned_data
        try:
            auto_top_up_set(
                account=account,
                enabled=data["enabled"],
                threshold=data["threshold"],
                amount=data["amount"],
                currency=account.currency,
            )
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
    if form.errors:
        return _respond(request, _context(request, account, auto_form=form), status=400)
    messages.success(
        request,
        "Automatic top-up saved." if form.cleaned_data["enabled"] else "Automatic top-up off.",
    )
    return redirect(account_url(request, "dashboards:credits"))
