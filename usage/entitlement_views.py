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
from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from usage.services.entitlement_check import entitlement_checks
from usage.services.keys import ingest_key_authenticate

MAX_CHECKS = 100
MAX_QUANTITY = 2**63 - 1
KEY_CACHE_SECONDS = 5.0
_WHOLE = re.compile(r"[0-9]{1,19}")
WWW_AUTHENTICATE = 'Bearer realm="meterdesk-usage"'

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


def _key_from_header(authorization: str):
    """The ingest key of an ``Authorization: Bearer <key>`` header, or None."""
    scheme, _, raw_key = authorization.partition(" ")
    raw_key = raw_key.strip()
    ok = scheme.lower() == "bearer" and raw_key and len(raw_key) <= 200
    return _authenticate(raw_key) if ok else None


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


def _error(status: int, code: str, message: str, **extra) -> tuple[int, dict]:
    return status, {"error": {"code": code, "message": message, **extra}}


def check_answer(
    *,
    method: str,
    authorization: str,
    params,
    content_type: str = "",
    body: Callable[[], bytes] = bytes,
) -> tuple[int, dict]:
    """(status, JSON body) of a request to the check URL: the Django view and the WSGI
    fast path (``usage.entitlement_wsgi``) both answer with it. ``params`` is the query
    (``QueryDict`` or a dict of the last values), ``body`` reads the request body (a batch only)."""
    if _key_from_header(authorization) is None:
        return _error(401, "unauthorized", "send a valid ingest key as 'Bearer <key>'")
    if method not in ("GET", "POST"):
        return _error(405, "method_not_allowed", "use GET for one check, POST for a batch")
    try:
        if method == "GET":
            return 200, entitlement_checks(checks=[_check(params)])[0].as_dict()
        if content_type != "application/json":
            return _error(415, "unsupported_media_type", "send the body as application/json")
        decisions = entitlement_checks(checks=_batch(body()))
    except CheckError as exc:
        return _error(400, exc.code, exc.message, field=exc.field)
    return 200, {"results": [d.as_dict() for d in decisions]}


@csrf_exempt
def check(request: HttpRequest) -> JsonResponse:
    status, payload = check_answer(
        method=request.method,
        authorization=request.headers.get("Authorization", ""),
        params=request.GET,
        content_type=request.content_type,
        body=lambda: request.body,
    )
    response = JsonResponse(payload, status=status)
    if status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response
