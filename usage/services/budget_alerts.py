"""Budget alerts: each warn level of a budget (e.g. 50%, 80%, 100% of the limit) alerts
once per billing period when the budget's usage reaches it, by e-mail to the account's
owners and billing contacts and through the alert channels (operator webhooks, Slack).

Exactly once: the claim INSERTs ``AlertDelivery(account, budget, level, period_start)``
under the ``alert_once_per_budget_level_period`` constraint (``alert_claim``), so two
sweeps or workers at once send one. The claim also locks the budget row and skips when
the limit it was computed with is no longer the budget's (a raise committed meanwhile).

Levels reached in one evaluation are claimed in ascending order (50 before 80 before
100). A raised budget re-arms the levels it no longer reaches: see
``usage.services.alert_resolution.budget_changed``.
"""

from collections.abc import Iterable
from functools import partial

from billing.models import Account
from usage.alert_email import budget_alert_email_send
from usage.models import AlertDelivery
from usage.selectors.alerts import alert_recipients, budget_delivery_key
from usage.selectors.budgets import BudgetStatus, budget_alert_summary
from usage.services.alert_channels import AlertFacts
from usage.services.alert_delivery import alert_claim, alert_email_after_commit, alert_email_deliver


def _facts(status: BudgetStatus, level: int) -> AlertFacts:
    return AlertFacts(
        summary=budget_alert_summary(status, level),
        level=level,
        used=status.used,
        limit=status.level_threshold(level),
        currency=status.currency,
        period_start=status.period_start,
        period_end=status.period_end,
        budget=status.budget,
    )


def budget_alert_send(*, delivery: AlertDelivery, status: BudgetStatus, level: int) -> bool:
    """Send a claimed budget alert's e-mail (after the claim committed); see
    ``alert_email_deliver``."""
    return alert_email_deliver(
        delivery=delivery,
        send=partial(
            budget_alert_email_send,
            account=delivery.account,
            status=status,
            level=level,
            recipients=delivery.recipients.split(", "),
        ),
        summary=budget_alert_summary(status, level),
        observed=status.used,
    )


def budget_alert_deliver(
    *, account: Account, status: BudgetStatus, level: int
) -> AlertDelivery | None:
    """Claim (account, budget, level, period) and send once the claim commits; None when
    claimed already (or the budget's limit changed since ``status`` was read)."""
    facts = _facts(status, level)
    delivery = alert_claim(
        fields={
            "account": account,
            "budget": status.budget,
            "level": level,
            "period_start": status.period_start,
            "period_end": status.period_end,
            "summary": facts.summary[:300],
            "observed": status.used,
            "threshold": facts.limit,
            "recipients": ", ".join(alert_recipients(account=account, kind="budget")),
        },
        facts=facts,
        budget_limit=status.limit,
    )
    if delivery is not None:
        alert_email_after_commit(budget_alert_send, delivery=delivery, status=status, level=level)
    return delivery


def budget_alerts_evaluate(
    *,
    account: Account,
    statuses: Iterable[BudgetStatus],
    deliveries: dict,
    attempted: list | None = None,
) -> list[AlertDelivery]:
    """Claim each newly reached level of the account's budgets, lowest first, and retry
    each pending (unsent) e-mail of a level still reached. ``deliveries``: this period's,
    from ``alert_deliveries_for_periods``. ``attempted``: gets each (status, level)
    reached and not yet sent (see ``usage.services.alerts._evaluate``)."""
    claimed = []
    for status in statuses:
        for level in status.levels_reached:
            key = budget_delivery_key(account.pk, status.budget.pk, level, status.period_start)
            delivery = deliveries.get(key)
            if delivery is not None and delivery.sent_at is not None:
                continue
            if attempted is not None:
                attempted.append((status, level))
            if delivery is None:
                delivery = budget_alert_deliver(account=account, status=status, level=level)
            else:
                delivery.account = account
                alert_email_after_commit(
                    budget_alert_send, delivery=delivery, status=status, level=level
                )
            if delivery is not None:
                claimed.append(delivery)
    return claimed
