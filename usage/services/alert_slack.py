"""An account's Slack-compatible incoming-webhook URL for alerts: set, test, remove.

Only owners and billing members of the account (``billing.selectors.user_manages_billing``)
or staff (``staff=True``: the view checked their permissions) change it. The URL must be
``https`` (``http`` too when ``ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS``), at most 500
characters, and its host not an IP literal in a private, loopback or link-local range (the
sender's SSRF guard, ``usage.outbound_http``, also checks what a hostname resolves to).
"""

import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator

from billing.models import Account
from billing.selectors import user_manages_billing
from usage.outbound_http import address_is_public, private_hosts_allowed
from usage.services.alert_channel_send import channel_post
from usage.services.alert_channels import slack_escape

FIELD = "slack_webhook_url"
MAX_LENGTH = 500
TEST_TEXT = "Meterdesk test message: alerts for *{name}* will be posted here."


@dataclass(frozen=True)
class SlackTestResult:
    status_code: int | None
    error: str  # "" when the receiver answered

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _error(message: str, code: str) -> ValidationError:
    return ValidationError({FIELD: ValidationError(message, code=code)})


def _check_manager(*, account: Account, user, staff: bool) -> None:
    if not staff and (user is None or not user_manages_billing(account=account, user=user)):
        raise PermissionDenied("Only owners and billing members may change the Slack webhook.")


def slack_url_validated(url: str) -> str:
    """``url`` stripped, or a ``ValidationError`` keyed ``slack_webhook_url`` with a code."""
    url = (url or "").strip()
    if not url:
        raise _error("Slack webhook URL: enter a URL.", "slack_url_required")
    if len(url) > MAX_LENGTH:
        raise _error(
            f"Slack webhook URL: at most {MAX_LENGTH} characters (this one has {len(url)}).",
            "slack_url_too_long",
        )
    schemes = ["https", "http"] if private_hosts_allowed() else ["https"]
    try:
        parts = urlsplit(url)
        URLValidator(schemes=["http", "https"])(url)
    except (ValueError, ValidationError):
        raise _error(
            "Slack webhook URL: enter a full URL, like https://hooks.slack.com/services/…",
            "slack_url_invalid",
        ) from None
    if parts.scheme not in schemes:
        raise _error("Slack webhook URL: it must start with https://.", "slack_url_not_https")
    try:
        literal = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        literal = None
    if literal is not None and not private_hosts_allowed() and not address_is_public(str(literal)):
        raise _error(
            "Slack webhook URL: the host may not be a private, loopback or link-local address.",
            "slack_url_private_host",
        )
    return url


def slack_url_set(*, account: Account, url: str, user=None, staff: bool = False) -> Account:
    """Save the account's Slack incoming-webhook URL after validating it."""
    _check_manager(account=account, user=user, staff=staff)
    account.slack_webhook_url = slack_url_validated(url)
    account.save(update_fields=[FIELD])
    return account


def slack_url_remove(*, account: Account, user=None, staff: bool = False) -> Account:
    _check_manager(account=account, user=user, staff=staff)
    account.slack_webhook_url = ""
    account.save(update_fields=[FIELD])
    return account


def slack_test_send(*, account: Account, user=None, staff: bool = False) -> SlackTestResult:
    """Post a short message to the saved URL through the alert sender's guarded POST."""
    _check_manager(account=account, user=user, staff=staff)
    if not account.slack_webhook_url:
        raise _error("Slack webhook URL: set one before sending a test.", "slack_url_required")
    text = TEST_TEXT.format(name=slack_escape(account.name))
    code, _text, error, _refused = channel_post(
        url=account.slack_webhook_url, payload=json.dumps({"text": text})
    )
    return SlackTestResult(status_code=code, error=error)


def slack_url_masked(url: str) -> str:
    """What members see: the scheme and host, the secret path hidden."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url[-4:]}" if len(url) > 12 else "…"
