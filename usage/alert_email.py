"""The alert e-mails (a rule's, rendered from the period summary; a budget level's, from
its ``BudgetStatus``) and their sending. Callers send it only after
the delivery row has committed (see ``usage.services.alerts``)."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape

from billing.models import Account
from billing.money import format_money
from usage.selectors.alerts import Check
from usage.selectors.budgets import (
    BudgetStatus,
    budget_alert_summary,
    budget_amount_text,
    budget_name,
    budget_used_text,
)
from usage.selectors.summary_lines import PeriodSummary


def credit_lines(balance) -> list[str]:
    """A credit alert's figures (``CreditBalance``), each a sentence with its currency."""
    cur = balance.currency
    code = cur.upper()
    lines = [
        f"Credits for this period: {format_money(balance.available_before_period, cur)} "
        f"{code} available, {format_money(balance.used_this_period, cur)} used by your usage "
        f"so far, {format_money(balance.remaining, cur)} left.",
    ]
    if balance.run_out:
        lines.append("Your credits have run out: further usage this period is billed.")
    elif balance.run_out_at is not None:
        lines.append(
            f"At the current pace they run out around {balance.run_out_at:%b} "
            f"{balance.run_out_at.day}, before the period ends on {balance.period_end:%b} "
            f"{balance.period_end.day}."
        )
    for item in balance.expiring_soon:
        lines.append(
            f"{format_money(item.amount, cur)} of {item.grant.name} expires "
            f"{item.expires_at:%b} {item.expires_at.day}."
        )
    lines.append(
        "The estimated invoice above is before credits: Stripe deducts them from the usage "
        "charges when the invoice is finalized."
    )
    return lines


def _with_credits(message: EmailMultiAlternatives, check: Check, credits_url: str) -> None:
    """Add a credit alert's figures before the dashboard link of the rendered e-mail."""
    balance = getattr(check, "balance", None)
    if balance is None:
        return
    lines = credit_lines(balance)
    text = "\n".join(lines) + f"\nSee your credits: {credits_url}\n\n"
    marker = "See your usage:"
    body = message.body
    message.body = body.replace(marker, text + marker, 1) if marker in body else body + text
    html = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html += f'<p><a href="{escape(credits_url)}">See your credits</a></p>'
    content, mimetype = message.alternatives[0]
    anchor = "<p><a href="
    message.alternatives = []
    message.attach_alternative(
        content.replace(anchor, html + anchor, 1) if anchor in content else content + html,
        mimetype,
    )


def alert_email_render(
    *, account: Account, check: Check, summary: PeriodSummary, recipients: list[str]
) -> EmailMultiAlternatives:
    context = {
        "account": account,
        "check": check,
        "summary": summary,
        "dashboard_url": f"{settings.SITE_URL}{reverse('dashboards:home')}",
        "alerts_url": f"{settings.SITE_URL}{reverse('dashboards:alerts')}",
    }
    message = EmailMultiAlternatives(
        subject=f"[Meterdesk] {account.name}: {check.summary}"[:200],
        body=render_to_string("usage/email/alert.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(render_to_string("usage/email/alert.html", context), "text/html")
    _with_credits(message, check, f"{settings.SITE_URL}{reverse('dashboards:credits')}")
    return message


def alert_email_send(
    *, account: Account, check: Check, summary: PeriodSummary, recipients: list[str]
) -> None:
    """Render and send; raises if the mail backend fails."""
    alert_email_render(account=account, check=check, summary=summary, recipients=recipients).send(
        fail_silently=False
    )


def budget_alert_email_render(
    *, account: Account, status: BudgetStatus, level: int, recipients: list[str]
) -> EmailMultiAlternatives:
    """A budget's warn level reached: the budget, the level, used of limit (money through
    ``billing.money``), when it resets and, for a hard cap, what happens at the cap."""
    context = {
        "account": account,
        "status": status,
        "budget": status.budget,
        "level": level,
        "name": budget_name(status.budget),
        "used_text": budget_used_text(status),
        "threshold_text": budget_amount_text(status, status.level_threshold(level)),
        "limit_text": budget_amount_text(status, status.limit),
        "dashboard_url": f"{settings.SITE_URL}{reverse('dashboards:home')}",
    }
    message = EmailMultiAlternatives(
        subject=f"[Meterdesk] {account.name}: {budget_alert_summary(status, level)}"[:200],
        body=render_to_string("usage/email/budget_alert.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(
        render_to_string("usage/email/budget_alert.html", context), "text/html"
    )
    return message


def budget_alert_email_send(
    *, account: Account, status: BudgetStatus, level: int, recipients: list[str]
) -> None:
    """Render and send; raises if the mail backend fails."""
    budget_alert_email_render(
        account=account, status=status, level=level, recipients=recipients
    ).send(fail_silently=False)
