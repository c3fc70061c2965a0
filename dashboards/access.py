"""Which account a dashboard request may see. Everything else in dashboards asks here."""

from django.http import Http404, HttpRequest

from billing.models import Account
from billing.selectors import account_for_user


def account_for_request(request: HttpRequest) -> Account | None:
    """The signed-in user's own account; ``?account=<id>`` is honoured only for staff
    or for the user's own account. Anything else is a 404, never a 403, so account
    ids cannot be probed."""
    requested = request.GET.get("account")
    if not requested:
        return account_for_user(user=request.user)
    if not requested.isdigit():
        raise Http404("no such account")
    accounts = Account.objects.filter(pk=int(requested))
    if not request.user.is_staff:
        accounts = accounts.filter(memberships__user=request.user)
    account = accounts.first()
    if account is None:
        raise Http404("no such account")
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
