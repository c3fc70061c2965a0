"""The entitlement check API (issue 16): thin views over
``usage.services.entitlement_check``.

``GET /api/v1/entitlements/check?customer=cus_…&event_name=…&quantity=N`` answers one
check; ``POST`` the same URL with ``{"checks": [{"customer", "event_name", "quantity"},
...]}`` (at most 100) answers ``{"results": [...]}`` in order. Both need an ingest key.
The key's verification is cached per process for ``KEY_CACHE_SECONDS``, so a warm check
makes no database query; a revoked key is refused within that time.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from usage.services.entitlement_check import entitlement_checks
from usage.services.keys import ingest_key_authenticate
from usage.views import error

MAX_CHECKS = 100
MAX_QUANTITY = 2**63 - 1
KEY_CACHE_SECONDS = 5.0
_WHOLE = re.compile(r"[0-9]{1,19}")

_keys: dict[str, tuple[object, float]] = {}
_keys_lock = threading.Lock()


def key_cache_clear() -> None:
    with _keys_lock:
        _keys.clear()


def _authenticate(raw_key: str):
    digest = hashlib.sha256(raw_key.encode()).hexdigest()
    now = time.monotonic()
    cached = _keys.get(digest)
    if cached is not None and cached[1] > now:
        return cached[0]
    key = ingest_key_authenticate(raw_key=raw_key)
    if key is not None:
        with _keys_lock:
            _keys[digest] = (key, now + KEY_CACHE_SECONDS)
    return key


def ingest_key_required_cached(view):
    """``usage.views.ingest_key_required`` with the verification cached per process."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
        raw_key = raw_key.strip()
        ok = scheme.lower() == "bearer" and raw_key and len(raw_key) <= 200
        key = _authenticate(raw_key) if ok else None
        if key is None:
            response = error(401, "unauthorized", "send a valid ingest key as 'Bearer <key>'")
            response["WWW-Authenticate"] = 'Bearer realm="meterdesk-usage"'
            return response
        request.ingest_key = key
        return view(request, *args, **kwargs)

    return wrapper


class CheckError(Exception):
    def __init__(self, code: str, message: str, field: str):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def _text(value, field: str) -> str:
    if value is None or value == "":
        raise CheckError("missing_parameter", f"{field}: this parameter is required", field)
    if not isinstance(value, str) or len(value) > 255 or "\x00" in value:
        message = f"{field}: must be a string of 1-255 characters"
        raise CheckError("invalid_parameter", message, field)
    return value


def _quantity(value, field: str) -> int:
    if value is None:
        return 1
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        raise CheckError("invalid_parameter", f"{field}: must be a whole number >= 0", field)
    return value


def _check(data, prefix: str = "") -> tuple[str, str, int]:
    return (
        _text(data.get("customer"), f"{prefix}customer"),
        _text(data.get("event_name"), f"{prefix}event_name"),
        _quantity(data.get("quantity"), f"{prefix}quantity"),
    )


def _batch(raw: bytes) -> list[tuple[str, str, int]]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise CheckError("invalid_json", "checks: the body is not valid JSON", "checks") from None
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, list) or not checks:
        raise CheckError(
            "invalid_parameter", 'checks: send {"checks": [{...}, ...]} with 1-100 checks', "checks"
        )
    if len(checks) > MAX_CHECKS:
        raise CheckError(
            "too_many_checks",
            f"checks: at most {MAX_CHECKS} checks per request, got {len(checks)}",
            "checks",
        )
    parsed = []
    for index, item in enumerate(checks):
        if not isinstance(item, dict):
            field = f"checks[{index}]"
            raise CheckError("invalid_parameter", f"{field}: must be an object", field)
        parsed.append(_check(item, f"checks[{index}]."))
    return parsed


@csrf_exempt
@ingest_key_required_cached
def check(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "POST"):
        return error(405, "method_not_allowed", "use GET for one check, POST for a batch")
    try:
        if request.method == "GET":
            decision = entitlement_checks(checks=[_check(request.GET)])[0]
            return JsonResponse(decision.as_dict())
        if request.content_type != "application/json":
            return error(415, "unsupported_media_type", "send the body as application/json")
        decisions = entitlement_checks(checks=_batch(request.body))
    except CheckError as exc:
        return error(400, exc.code, exc.message, field=exc.field)
    return JsonResponse({"results": [d.as_dict() for d in decisions]})
