"""The one answer to "may this account use the product now?" for all of Meterdesk."""

from billing.models import Account

USABLE = frozenset({Account.Status.ACTIVE, Account.Status.PAST_DUE})


def account_may_use_product(account: Account | None) -> bool:
    """Active accounts may; past-due ones may during their grace period (until the beat
    task suspends them); suspended and canceled ones may not."""
    return account is not None and account.status in USABLE
