"""Selectors: what usage Stripe will never bill (reported too late) would have cost."""

from django.db.models import Sum

from billing.mirror.subscriptions import subscription_state_for_account
from billing.money import format_money
from billing.pricing import line_amount
from usage.models import UsageReport


def too_late_amount_at_stake(*, report: UsageReport) -> int | None:
    """Minor units the too-late units would have added to the period's invoice line: the
    meter's price on (sent usage + these units) minus the price on the sent usage alone
    (for ``last`` meters: the late value against the last value sent). None when the
    account's plan has no price for the meter."""
    state = subscription_state_for_account(account=report.account)
    item = next(
        (i for i in (state.metered_items if state else ()) if i.meter.pk == report.meter_id),
        None,
    )
    if item is None:
        return None
    sent = UsageReport.objects.filter(
        account_id=report.account_id,
        meter_id=report.meter_id,
        period_start=report.period_start,
        status=UsageReport.Status.SENT,
    )
    if report.meter.aggregation == "last":
        last_sent = sent.order_by("-timestamp").values_list("value", flat=True).first() or 0
        return line_amount(price=item.spec, quantity=report.value) - line_amount(
            price=item.spec, quantity=last_sent
        )
    billed = sent.aggregate(total=Sum("value"))["total"] or 0
    return line_amount(price=item.spec, quantity=billed + report.value) - line_amount(
        price=item.spec, quantity=billed
    )


def too_late_amount_display(*, report: UsageReport) -> str:
    amount = too_late_amount_at_stake(report=report)
    if amount is None:
        return "no price for this meter on the plan"
    state = subscription_state_for_account(account=report.account)
    return format_money(amount, state.currency if state else report.account.currency)
