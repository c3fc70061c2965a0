"""Automatic top-ups: buy the account's chosen amount of paid credits when its live
remaining balance (``usage.selectors.credit_balance``) falls below its threshold.

Checked where alerts are evaluated (after ingestion, and by the sweep): see
``usage.services.credit_alerts``. At most one automatic top-up is ever in flight per
account (awaiting payment or being created in Stripe): the database's partial unique
constraint ``credit_grant_one_auto_top_up_in_flight`` decides, so two evaluations at
once buy once; the check before it only spares the INSERT. Once the purchase is paid and
the grant is active the balance rises; until then nothing more is bought. A top-up that
failed or whose purchase was canceled (a declined card) is not bought again until the
customer saves the settings again.

The settings (:func:`auto_top_up_set`) are the customer's: enabled, the threshold and
the amount, both in minor units of the account's currency.
"""

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Account
from billing.models_credits import AutoTopUp, CreditGrant
from billing.services.credits import CreditError, credit_grant_create
from usage.selectors.credit_balance import CreditBalance

logger = logging.getLogger(__name__)

IN_FLIGHT = (CreditGrant.Status.AWAITING_PAYMENT, CreditGrant.Status.PENDING)
AUTO_TOP_UP_NAME = "Automatic top-up"


def auto_top_up_in_flight(*, account: Account) -> CreditGrant | None:
    """The account's automatic top-up that is awaiting payment or being created."""
    return CreditGrant.objects.filter(
        account=account, source=CreditGrant.Source.AUTO_TOP_UP, status__in=IN_FLIGHT
    ).first()


def _declined_since_saved(*, account: Account, settings: AutoTopUp) -> bool:
    """The last automatic top-up failed or its purchase was canceled (declined, voided)
    since the settings were last saved: not bought again until the customer saves them,
    or every evaluation would order another one that fails the same way."""
    last = (
        CreditGrant.objects.filter(account=account, source=CreditGrant.Source.AUTO_TOP_UP)
        .order_by("-created_at", "-pk")
        .values_list("status", "created_at")
        .first()
    )
    return (
        last is not None
        and last[0] in (CreditGrant.Status.FAILED, CreditGrant.Status.CANCELED)
        and last[1] >= settings.updated_at
    )


def auto_top_up_check(
    *,
    account: Account,
    balance: CreditBalance | None,
    settings: AutoTopUp | None = None,
    now: datetime | None = None,
) -> CreditGrant | None:
    """Buy the automatic top-up if it is enabled, in the balance's currency, the live
    remaining balance is below the threshold and none is in flight; returns the new
    grant (awaiting payment), else None. ``settings``: the account's ``AutoTopUp`` when
    the caller has it loaded. Never raises for a refused purchase: it is logged."""
    if balance is None:
        return None
    if settings is None:
        settings = AutoTopUp.objects.filter(account=account).first()
    if settings is None or not settings.enabled or settings.currency != balance.currency:
        return None
    if balance.remaining >= settings.threshold:
        return None
    if auto_top_up_in_flight(account=account) is not None:
        return None
    if _declined_since_saved(account=account, settings=settings):
        return None
    try:
        with transaction.atomic():
            grant = credit_grant_create(
                account=account,
                name=AUTO_TOP_UP_NAME,
                category=CreditGrant.Category.PAID,
                amount=settings.amount,
                currency=settings.currency,
                source=CreditGrant.Source.AUTO_TOP_UP,
                purchase_amount=settings.amount,
            )
            AutoTopUp.objects.filter(pk=settings.pk).update(last_triggered_at=now or timezone.now())
    except IntegrityError:
        return None  # another evaluation bought it a moment ago
    except CreditError as exc:
        logger.warning("automatic top-up refused for account %s: %s", account.pk, exc)
        return None
    logger.info(
        "automatic top-up %s for account %s: remaining %s < threshold %s %s",
        grant.pk,
        account.pk,
        balance.remaining,
        settings.threshold,
        settings.currency,
    )
    return grant


def auto_top_up_set(
    *, account: Account, enabled: bool, threshold: int, amount: int, currency: str
) -> AutoTopUp:
    """Save the account's automatic top-up; errors name the field (``ValidationError``).

    ``threshold`` >= 0 and ``amount`` > 0, minor units of ``currency`` (the account's)."""
    errors: dict[str, str] = {}
    if threshold is None or threshold < 0:
        errors["threshold"] = "Enter a balance of zero or more."
    if amount is None or amount <= 0:
        errors["amount"] = "Enter an amount above zero."
    if len(currency or "") != 3:
        errors["amount"] = "The account has no billing currency yet."
    if errors:
        raise ValidationError(errors)
    settings, _ = AutoTopUp.objects.update_or_create(
        account=account,
        defaults={
            "enabled": enabled,
            "threshold": threshold,
            "amount": amount,
            "currency": currency.lower(),
        },
    )
    return settings
