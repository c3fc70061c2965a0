"""Which account a dashboard request may see or change. Everything in dashboards asks here."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from billing.models import Account
from billing.selectors import account_for_user

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
    return account


def period_offset(request: HttpRequest) -> int:
    """``?period=0`` is the current period, ``-1`` the one before, down to -12."""
    raw = request.GET.get("period", "0")
    try:
        offset = int(raw)
    except ValueError as exc:
        raise Http404("period must be 0 or a negative integer") from exc
    if not -12 <= offset <= 0:
        raise Http404("period must be between -12 and 0")
    return offset
