"""Embed tokens: what lets an iframe on the operator's site show one customer's usage.

The operator's backend mints a token with its API key (``POST /api/v1/embed_tokens``,
:mod:`dashboards.embed_views`); the token is the widget's only credential (no session,
no cookie). It is a :class:`django.core.signing.TimestampSigner` signature, under its
own salt, of ``{"a": account id, "k": the minting key's id, "e": expiry (unix s)}``:
signed, not encrypted (it holds only ids), and unforgeable without ``SECRET_KEY``.
Checking it needs no table of tokens: the signature, its age (never more than
``EMBED_TOKEN_MAX_TTL_SECONDS``) and the expiry it carries; one query checks that the
key that minted it is not revoked since, so revoking a key ends its widgets at once.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils import timezone

from billing.models import Account
from usage.models import IngestKey

SALT = "meterdesk.dashboards.embed_usage"
DEFAULT_TTL_SECONDS = 900


class EmbedTokenRefused(Exception):
    """The token cannot open the widget: ``reason`` is ``expired`` or ``invalid``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EmbedToken:
    token: str
    account_id: int
    expires_at: datetime


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def embed_token_create(
    *, account: Account, key: IngestKey, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> EmbedToken:
    """A token for ``account``'s widget, valid ``ttl_seconds`` from now (whole seconds;
    the caller checks the range)."""
    # The signer stamps time.time(); the expiry is counted from the same clock, to the
    # second (the stamp's resolution), so max_age and the expiry agree.
    now = int(timezone.now().timestamp())
    expires = now + ttl_seconds
    token = _signer().sign_object({"a": account.pk, "k": key.pk, "e": expires}, compress=True)
    return EmbedToken(
        token=token, account_id=account.pk, expires_at=datetime.fromtimestamp(expires, tz=UTC)
    )


def embed_token_account(*, token: str, now: datetime | None = None) -> Account:
    """The account ``token`` opens, or :class:`EmbedTokenRefused`."""
    if not token or len(token) > 500:
        raise EmbedTokenRefused("invalid")
    max_age = timedelta(seconds=settings.EMBED_TOKEN_MAX_TTL_SECONDS)
    try:
        payload = _signer().unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise EmbedTokenRefused("expired") from None
    except (signing.BadSignature, ValueError):
        raise EmbedTokenRefused("invalid") from None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(field), int) for field in ("a", "k", "e")
    ):
        raise EmbedTokenRefused("invalid")
    now = now or timezone.now()
    if now.timestamp() >= payload["e"]:
        raise EmbedTokenRefused("expired")
    if not IngestKey.objects.filter(pk=payload["k"], revoked_at__isnull=True).exists():
        raise EmbedTokenRefused("invalid")  # the key that minted it was revoked since
    account = Account.objects.filter(pk=payload["a"]).first()
    if account is None:
        raise EmbedTokenRefused("invalid")
    return account
