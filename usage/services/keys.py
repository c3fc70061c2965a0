"""Ingest keys: created once (the raw key is returned, never stored), hashed, revocable.

A key's ``scope`` says what it may do: ``ingest`` keys send usage and read it back,
``read`` keys only read (the read API, the summary, entitlement checks). The one check
is :func:`ingest_key_allows`."""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.utils import timezone

from usage.models import IngestKey

KEY_PREFIX = "mdk_"
PREFIX_LENGTH = 12
# Recording every use would turn each ingest request into one more write on one hot
# row; once a minute is enough to tell a live key from a dead one.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def ingest_key_create(*, name: str, scope: str = IngestKey.Scope.INGEST) -> tuple[IngestKey, str]:
    """A new key: returns the row and the raw key, which is not stored anywhere."""
    if scope not in IngestKey.Scope.values:
        raise ValueError(f"scope: must be one of {', '.join(IngestKey.Scope.values)}")
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    key = IngestKey.objects.create(
        name=name, scope=scope, prefix=raw_key[:PREFIX_LENGTH], key_hash=_hash(raw_key)
    )
    return key, raw_key


INGEST, READ = "ingest", "read"


def ingest_key_allows(*, key: IngestKey, action: str) -> bool:
    """Whether ``key`` may ``action`` (``"ingest"`` or ``"read"``): an ingest key may
    both, a read key only read."""
    if action == READ:
        return True
    return action == INGEST and key.scope == IngestKey.Scope.INGEST


def ingest_key_revoke(*, key: IngestKey, now: datetime | None = None) -> IngestKey:
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def ingest_key_authenticate(*, raw_key: str, now: datetime | None = None) -> IngestKey | None:
    """The active key matching ``raw_key`` (recording its use at most once a minute)."""
    if not raw_key or len(raw_key) > 200:
        return None
    key = IngestKey.objects.filter(key_hash=_hash(raw_key), revoked_at__isnull=True).first()
    if key is None:
        return None
    now = now or timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        IngestKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
