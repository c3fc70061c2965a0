"""Alert channels beyond e-mail: the rows that say what to send where.

When an alert is claimed (``usage.services.alert_delivery.alert_claim``), in the same
transaction, :func:`alert_channels_open` adds one ``ChannelDelivery`` per enabled
``WebhookEndpoint`` (the operator's signed webhooks) and one for the account's
``slack_webhook_url``, each carrying the exact body to send. So a rolled-back claim opens
no channel, and a claim that commits has its channels recorded before anything is sent;
``usage.services.alert_channel_send`` sends them after the commit and retries them.

Only ``http``/``https`` URLs are ever sent to (anything else is recorded as failed with
the reason); redirects are not followed (see the sender).
"""

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing.mirror.customers import customer_id_for_account
from usage.models import AlertDelivery, AlertRule
from usage.models_budgets import Budget
from usage.models_webhooks import ChannelDelivery, WebhookEndpoint

Channel = ChannelDelivery.Channel
Status = ChannelDelivery.Status
THRESHOLD_REACHED = "alert.threshold_reached"
URL_REFUSED = "refused: only http and https URLs are sent to"


@dataclass(frozen=True)
class AlertFacts:
    """What an alert says, for every channel: one line, the level and the numbers."""

    summary: str
    level: int
    used: int  # units, or minor units when ``currency``
    limit: int  # the threshold of the level (units or minor units)
    currency: str  # "" for units
    period_start: datetime
    period_end: datetime  # when it resets
    budget: Budget | None = None
    rule: AlertRule | None = None


def url_allowed(url: str) -> bool:
    """SSRF sanity: an absolute http(s) URL with a host, nothing else (no file:, ftp:,
    gopher:, no scheme-relative or credential-only forms)."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def alert_payload(*, delivery: AlertDelivery, facts: AlertFacts) -> dict:
    """The webhook body (JSON object) of an alert."""
    budget, rule = facts.budget, facts.rule
    return {
        "id": f"alert_{delivery.pk}",
        "type": THRESHOLD_REACHED,
        "created": _unix(timezone.now()),  # when the alert was claimed
        "account": {"id": delivery.account_id, "name": delivery.account.name},
        "customer": customer_id_for_account(account=delivery.account),
        "budget": budget
        and {
            "id": budget.pk,
            "kind": budget.kind,
            "meter": budget.meter.event_name if budget.meter_id else None,
            "limit": budget.limit,
            "hard_cap": budget.hard_cap,
        },
        "rule": rule and {"id": rule.pk, "kind": rule.kind},
        "level": facts.level,
        "used": facts.used,
        "limit": facts.limit,
        "currency": facts.currency,
        "period": {"start": _unix(facts.period_start), "end": _unix(facts.period_end)},
        "summary": facts.summary,
    }


def slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions (``<!channel>``) and ``&`` as an entity
    start; text from people (an account's name) is escaped as Slack's formatting guide
    asks: https://api.slack.com/reference/surfaces/formatting#escaping"""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(*, delivery: AlertDelivery, facts: AlertFacts) -> str:
    """Slack's incoming-webhook ``text`` (mrkdwn): the alert, when it resets, a link."""
    dashboard = f"{settings.SITE_URL}{reverse('dashboards:home')}"
    resets = facts.period_end.strftime("%b %-d, %Y %H:%M UTC")
    cap = ""
    if facts.budget is not None and facts.budget.hard_cap:
        cap = " Hard cap: at 100% the service is told to stop."
    return (
        f"*{delivery.account.name}*: {facts.summary}. Resets {resets}.{cap} <{dashboard}|See usage>"
    )


def _body(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def alert_channels_open(*, delivery: AlertDelivery, facts: AlertFacts) -> list[ChannelDelivery]:
    """Add the alert's channel deliveries (call inside the claim's transaction)."""
    rows = []
    endpoints = list(WebhookEndpoint.objects.filter(enabled=True).order_by("pk"))
    payload = _body(alert_payload(delivery=delivery, facts=facts)) if endpoints else ""
    for endpoint in endpoints:
        rows.append(
            ChannelDelivery(
                alert=delivery,
                channel=Channel.WEBHOOK,
                endpoint=endpoint,
                url=endpoint.url,
                payload=payload,
            )
        )
    slack_url = delivery.account.slack_webhook_url
    if slack_url:
        text = slack_text(delivery=delivery, facts=facts)
        rows.append(
            ChannelDelivery(
                alert=delivery, channel=Channel.SLACK, url=slack_url, payload=_body({"text": text})
            )
        )
    for row in rows:
        if not url_allowed(row.url):
            row.status, row.last_error = Status.FAILED, URL_REFUSED
    return ChannelDelivery.objects.bulk_create(rows) if rows else []
