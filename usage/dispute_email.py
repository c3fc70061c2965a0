"""The e-mail telling a customer how staff resolved their dispute. Sent only after the
resolution commits (``usage.services.disputes``)."""

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from billing.money import format_money
from usage.models import UsageDispute


def dispute_recipients(*, dispute: UsageDispute) -> list[str]:
    """Who opened the dispute, else the account's billing address."""
    email = dispute.created_by.email if dispute.created_by else ""
    return [email or dispute.account.billing_email]


def dispute_email_render(*, dispute: UsageDispute) -> EmailMessage:
    correction = dispute.correction
    line_url = reverse("dashboards:drilldown_line", args=[dispute.invoice_id, dispute.line_id])
    context = {
        "dispute": dispute,
        "correction": correction,
        "credit": (
            format_money(correction.credit_amount, correction.currency)
            if correction is not None and correction.credit_amount
            else ""
        ),
        "line_url": f"{settings.SITE_URL}{line_url}",
    }
    return EmailMessage(
        subject=f"[Meterdesk] {dispute.account.name}: your dispute #{dispute.pk} is resolved",
        body=render_to_string("usage/email/dispute_resolved.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[r for r in dispute_recipients(dispute=dispute) if r],
    )


def dispute_email_send(*, dispute: UsageDispute) -> None:
    """Render and send; raises if the mail backend fails."""
    dispute_email_render(dispute=dispute).send(fail_silently=False)
