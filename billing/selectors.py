from django.http import HttpRequest

from billing.models import Account


def account_for_user(*, user) -> Account | None:
    """The one account a signed-in user belongs to, or None."""
    if not user.is_authenticated:
        return None
    return Account.objects.filter(memberships__user=user).first()


def account_for_request(request: HttpRequest) -> Account | None:
    """dj-stripe's subscriber callback: the request user's account."""
    return account_for_user(user=request.user)
