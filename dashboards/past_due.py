"""The dashboard's account-status banner (``templates/dashboards/_past_due.html``): its
context, and the copy sent out of band with each poll of ``#summary`` so the banner
follows the account's status (a payment confirmed by Stripe's webhook) without a reload."""

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from billing.models import Account
from billing.past_due import past_due_notice_for_account

TEMPLATE = "dashboards/_past_due.html"


def status_banner_context(*, account: Account | None) -> dict:
    return {"past_due": past_due_notice_for_account(account=account) if account else None}


def append_status_banner(request: HttpRequest, response: HttpResponse, context: dict) -> None:
    """Add the banner to a poll response as an htmx out-of-band swap (``#account-status``)."""
    banner = render_to_string(TEMPLATE, {**context, "oob": True}, request=request)
    response.content = response.content + banner.encode()
