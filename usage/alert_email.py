"""The alert e-mails (a rule's, rendered from the period summary; a budget level's, from
its ``BudgetStatus``) and their sending. Callers send it only after
the delivery row has committed (see ``usage.services.alerts``)."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import Account
from usage.selectors.alerts import Check
from usage.selectors.budgets import (
    BudgetStatus,
    budget_alert_summary,
    budget_amount_text,
    budget_name,
    budget_used_text,
)
from usage.selectors.summary_lines import PeriodSummary


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
