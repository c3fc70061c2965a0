from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta
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


def interval_step(interval: str, count: int) -> relativedelta:
    """One billing interval as a relativedelta (month-end anchors clamp like Stripe's)."""
    count = max(1, int(count or 1))
    return {
        "day": relativedelta(days=count),
        "week": relativedelta(weeks=count),
        "month": relativedelta(months=count),
        "year": relativedelta(years=count),
    }.get(interval, relativedelta(months=count))


def _period_from_anchor(
    anchor: datetime, step: relativedelta, at: datetime, *, lower: datetime, upper: datetime
) -> tuple[datetime, datetime] | None:
    """The period ``[anchor + k*step, anchor + (k+1)*step)`` holding ``at``, or None."""
    if not lower <= at < upper:
        return None
    # Periods are computed from the anchor each time (never chained), so month-end
    # anchors clamp like Stripe's: Jan 31 -> Feb 28 -> Mar 31.
    average = (anchor + step * 12 - anchor) / 12 or timedelta(days=30)
    k = int((at - anchor) / average)
    for _ in range(60):
        start, end = anchor + step * k, anchor + step * (k + 1)
        if at < start:
            k -= 1
        elif at >= end:
            k += 1
        else:
            return max(start, lower), end
    return None


def account_billing_period(*, account: Account, at: datetime) -> tuple[datetime, datetime] | None:
    """The account's Stripe billing period ``(start, end)`` holding ``at``, or None.

    From the dj-stripe mirror of the account's subscriptions (newest first). In API
    version dahlia periods live on subscription items (``current_period_start/end``);
    an item's current period is used when it holds ``at``; earlier or later periods
    are stepped from the subscription's ``billing_cycle_anchor`` by the price's
    interval, never before the subscription started nor after it ended. None when no
    subscription covered ``at``.
    """
    from djstripe.models import Subscription

    def ts(value):
        return datetime.fromtimestamp(int(value), UTC) if value else None

    subscriptions = Subscription.objects.filter(customer__subscriber=account).order_by("-created")
    for subscription in subscriptions:
        data = subscription.stripe_data or {}
        items = (data.get("items") or {}).get("data") or []
        started = ts(data.get("start_date")) or ts(data.get("created"))
        ended = ts(data.get("ended_at"))
        for item in items:
            start, end = ts(item.get("current_period_start")), ts(item.get("current_period_end"))
            if start and end and start <= at < end:
                return start, end
        if not items or started is None or at < started or (ended and at >= ended):
            continue
        price = items[0].get("price") or {}
        recurring = price.get("recurring") if isinstance(price, dict) else None
        recurring = recurring or (data.get("plan") or {}) or {}
        step = interval_step(recurring.get("interval", "month"), recurring.get("interval_count", 1))
        anchor = ts(data.get("billing_cycle_anchor")) or started
        far = datetime.max.replace(tzinfo=UTC)
        period = _period_from_anchor(anchor, step, at, lower=started, upper=ended or far)
        if period is not None:
            return period
    return None
