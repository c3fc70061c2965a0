"""Credit alerts and automatic top-ups, in the alert evaluations (one account after
ingestion, and the sweep; ``usage.services.alerts``).

Rules (``AlertRule``), each once per (account, rule, period) like every rule:

- ``credits_below``: the live remaining balance (``CreditBalance.remaining``: what is
  left for this period's invoice after the usage so far) is below ``amount``;
- ``credits_run_out``: at the projected pace the credits run out before the period ends
  (``CreditBalance.run_out_at``).

The live balance is only computed for accounts that need it: with a credit rule or an
enabled automatic top-up. It is computed once per evaluation and serves both.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from billing.models import Account
from billing.models_credits import AutoTopUp
from billing.money import format_money
from usage.models import AlertRule
from usage.selectors.alerts import Check
from usage.selectors.credit_balance import CreditBalance, credit_balance
from usage.selectors.id_arrays import ids_condition
from usage.selectors.summary_lines import PeriodSummary
from usage.services.auto_top_up import auto_top_up_check

Kind = AlertRule.Kind


@dataclass(frozen=True)
class CreditCheck(Check):
    """A credit rule's check, carrying the balance it was made from (for the e-mail)."""

    balance: CreditBalance | None = None


def _day(moment) -> str:
    return f"{moment:%b} {moment.day}"


def credit_alert_check(*, rule: AlertRule, balance: CreditBalance | None) -> Check | None:
    """Whether a credit rule is crossed (None: not a credit rule, no credits, or another
    currency). ``observed`` and ``threshold`` are minor units of the balance's currency:
    the remaining balance and the rule's amount (``credits_below``), or the credits the
    projected usage could use and the credits available (``credits_run_out``). The text
    has no apostrophe: the plain-text e-mail template escapes it (``&#x27;``)."""
    if rule.kind not in AlertRule.CREDIT_KINDS or balance is None:
        return None
    cur = balance.currency
    if rule.currency and rule.currency != cur:
        return None
    code = cur.upper()
    if rule.kind == Kind.CREDITS_BELOW:
        observed, threshold = balance.remaining, rule.amount
        text = (
            f"Credit balance is {format_money(observed, cur)} {code}, below your alert at "
            f"{format_money(threshold, cur)}: usage so far this period uses "
            f"{format_money(balance.used_this_period, cur)} of "
            f"{format_money(balance.available_before_period, cur)}"
        )
        crossed = observed < threshold
    else:
        observed, threshold = balance.projected_cost, balance.available_before_period
        crossed = balance.run_out_at is not None
        if not crossed:
            text = "Credits last beyond this period"
        else:
            when = (
                "have run out"
                if balance.run_out
                else f"are projected to run out on {_day(balance.run_out_at)}"
            )
            text = (
                f"Credits {when}, before the period ends on {_day(balance.period_end)}: "
                f"{format_money(balance.remaining, cur)} {code} left of "
                f"{format_money(threshold, cur)}, and the projected usage for this period "
                f"would use {format_money(observed, cur)}"
            )
    return CreditCheck(
        rule=rule,
        observed=observed,
        threshold=threshold,
        crossed=crossed,
        summary=text,
        balance=balance,
    )


def credit_accounts_needing_balance(
    *, account_ids: Iterable[int], rules: Mapping[int, Iterable[AlertRule]]
) -> dict[int, AutoTopUp | None]:
    """The accounts whose live credit balance the evaluation needs (a credit rule, or
    an enabled automatic top-up), with their enabled ``AutoTopUp``: one query."""
    ids = list(account_ids)
    top_ups = {
        t.account_id: t
        for t in AutoTopUp.objects.filter(ids_condition(AutoTopUp, "account_id", ids), enabled=True)
    }
    return {
        account_id: top_ups.get(account_id)
        for account_id in ids
        if account_id in top_ups
        or any(r.kind in AlertRule.CREDIT_KINDS for r in rules.get(account_id, ()))
    }


def credit_balance_evaluate(
    *, account: Account, summary: PeriodSummary, top_up: AutoTopUp | None
) -> CreditBalance | None:
    """The account's live balance for the alert checks, after buying its automatic
    top-up if the balance calls for one (the purchase does not change the balance until
    it is paid)."""
    balance = credit_balance(account=account, summary=summary)
    if top_up is not None:
        auto_top_up_check(account=account, balance=balance, settings=top_up)
    return balance
