"""Which account a dashboard request may see or change. Everything in dashboards asks here.

Staff looking at a customer's pages ("view as customer") carry ``?account=<id>`` on every
link and form of those pages: :func:`account_for_request` records the account on the
request (``request.viewing_as``) and :func:`account_url` (the ``{% account_url %}`` tag,
``dashboards.templatetags.account_urls``) adds it back to every URL, so it is never lost.
"""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from billing.models import Account, Membership
from billing.selectors import account_for_user
from billing.services.members import role_of

# What a staff user needs to look at another account's pages (``?account=``).
VIEW_ANY_ACCOUNT = "billing.view_account"


def account_for_request(
    request: HttpRequest, *, staff_permissions: tuple[str, ...] = ()
) -> Account | None:
    """The signed-in user's own account, or with ``?account=<id>`` one they may act on.

    Members reach only their own account; any other id is a 404, never a 403, so account
    ids cannot be probed. Staff may reach another account only with Django permissions,
    checked per action: ``billing.view_account`` to look, plus ``staff_permissions`` for
    what the view changes (e.g. ``usage.add_alertrule``); without them, a 403 that names
    the missing permission. ``is_staff`` alone only opens the admin's door.
    """
    requested = request.GET.get("account")
    own = account_for_user(user=request.user)
    if not requested:
        return own
    if not requested.isdigit():
        raise Http404("no such account")
    if own is not None and own.pk == int(requested):
        return own
    account = Account.objects.filter(pk=int(requested)).first() if request.user.is_staff else None
    if account is None:
        raise Http404("no such account")
    missing = [
        permission
        for permission in (VIEW_ANY_ACCOUNT, *staff_permissions)
        if not request.user.has_perm(permission)
    ]
    if missing:
        raise PermissionDenied(f"Staff need the permission {', '.join(missing)} for this.")
    request.viewing_as = account  # staff viewing as this customer: links keep it
    return account


def viewing_as(request: HttpRequest | None) -> Account | None:
    """The customer account a staff user is viewing this request as, if any."""
    return getattr(request, "viewing_as", None)


def account_query(request: HttpRequest | None, *, prefix: str = "&") -> str:
    """``&account=<id>`` (or with ``prefix="?"``) while staff view as a customer, else ``""``."""
    account = viewing_as(request)
    return f"{prefix}account={account.pk}" if account is not None else ""


def account_url(request: HttpRequest | None, name: str, *args, **query) -> str:
    """``reverse(name, args)`` with ``query`` (``None`` values left out) and, while staff
    view as a customer, ``account=<id>``: the one way customer pages build their URLs."""
    params = {key: value for key, value in query.items() if value is not None}
    account = viewing_as(request)
    if account is not None:
        params["account"] = account.pk
    url = reverse(name, args=args)
    return f"{url}?{urlencode(params)}" if params else url


def may_see_amounts(request: HttpRequest, account: Account | None) -> bool:
    """Money on the customer pages: everyone but viewers, and viewers too unless the
    operator sets ``BILLING_VIEWERS_SEE_AMOUNTS=false``. Staff viewing as see them."""
    if settings.BILLING_VIEWERS_SEE_AMOUNTS or account is None or viewing_as(request):
        return True
    return role_of(account=account, user=request.user) != Membership.Role.MEMBER


AMOUNTS_HIDDEN = (
    "This page shows amounts, which this account's viewers don't see. "
    "Ask an owner or billing member of the account."
)


def require_amounts(request: HttpRequest, account: Account | None) -> None:
    """A 403 (with :data:`AMOUNTS_HIDDEN`) for a page that is mostly money (invoices,
    statements, drill-down, credits) when :func:`may_see_amounts` says no."""
    if not may_see_amounts(request, account):
        raise PermissionDenied(AMOUNTS_HIDDEN)


def staff_may_pick_accounts(user) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.has_perm(VIEW_ANY_ACCOUNT))


def pickable_accounts(user) -> list[Account]:
    """The accounts a staff user may view as (empty for everyone else)."""
    if not staff_may_pick_accounts(user):
        return []
    return list(Account.objects.order_by("name", "pk").only("pk", "name"))


def render_not_found(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A customer page's 404 (a bad ``?period=`` or ``?account=``, a period before the
    subscription) rendered in our layout as ``404.html``, also with ``DEBUG=True``, where
    Django would show its technical 404 page instead of the project's."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return render(request, "404.html", {"reason": _reason(exc)}, status=404)

    return wrapper


def _reason(exc: Http404) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".") if text else ""


def period_offset(request: HttpRequest) -> int:
    """``?period=0`` is the current period, ``-1`` the one before, down to -12."""
    raw = request.GET.get("period", "0")
    try:
        offset = int(raw)
    except ValueError as exc:
        raise Http404("That billing period doesn't exist.") from exc
    if not -12 <= offset <= 0:
        raise Http404("That billing period doesn't exist.")
    return offset
