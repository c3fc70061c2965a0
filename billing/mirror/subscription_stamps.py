"""When each account's mirrored subscriptions last changed: a cheap stamp that moves
whenever ``subscription_states_for_accounts`` could answer differently.

A subscription state is read from the mirrored subscription row (its ``stripe_data``:
status, current period, items and quantities) and its prices, whose amounts and tiers
Stripe never changes after creation. dj-stripe saves the row on every sync (webhooks,
``stripe_sync_everything``, plan changes), and each save sets ``djstripe_updated``
(``auto_now``). So (id, ``djstripe_updated``) of every subscription of the account,
whatever its status, changes whenever its state can. The alert sweep compares this
stamp instead of loading and parsing every subscription (``usage.services.alert_sweep``).
"""

from collections.abc import Iterable
from datetime import datetime

from djstripe.models import Subscription


def subscription_stamps_for_accounts(
    *, account_ids: Iterable[int]
) -> dict[int, tuple[tuple[str, datetime], ...]]:
    """{account id: ((subscription id, djstripe_updated), ...)} sorted, one query;
    accounts without a mirrored subscription are left out."""
    stamps: dict[int, list[tuple[str, datetime]]] = {}
    for account_id, subscription_id, updated in Subscription.objects.filter(
        customer__subscriber_id__in=list(account_ids)
    ).values_list("customer__subscriber_id", "id", "djstripe_updated"):
        stamps.setdefault(account_id, []).append((subscription_id, updated))
    return {account_id: tuple(sorted(rows)) for account_id, rows in stamps.items()}
