"""The alert e-mail: rendered from the period summary and sent. Callers send it only after
the delivery row has committed (see ``usage.services.alerts``)."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import Account
from usage.selectors.alerts import Check
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
