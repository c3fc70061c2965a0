from django.http import HttpRequest

from billing.models import Account, Membership


def account_for_user(*, user) -> Account | None:
    """The one account a signed-in user belongs to, or None."""
    if not user.is_authenticated:
        return None
    return Account.objects.filter(memberships__user=user).first()


BILLING_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.BILLING})


def user_manages_billing(*, account: Account, user) -> bool:
    """Owners and billing members manage billing (portal, alert emails); members look."""
    role = account.memberships.filter(user=user).values_list("role", flat=True).first()
    return role in BILLING_ROLES


def account_for_request(request: HttpRequest) -> Account | None:
    """dj-stripe's subscriber callback: the request user's account."""
    return account_for_user(user=request.user)
