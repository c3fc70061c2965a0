"""The read API for the operator's own app: thin views over ``usage.selectors.read_api``.

``GET /api/v1/customers/{customer}/usage``, ``/invoices`` and ``/alerts``, with an
ingest key or a read-only key (``Authorization: Bearer <key>``); ``{customer}`` is the
Stripe customer id. Documented in ``docs/openapi.yaml``. Errors are
``{"error": {"code", "message"[, "field"]}}``: 401 ``invalid_key``, 404
``customer_not_found``, 400 ``invalid_parameter`` naming the parameter.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from usage.selectors.read_api import (
    read_api_account,
    read_api_alerts,
    read_api_invoices,
    read_api_usage,
)
from usage.services.keys import READ
from usage.views import api_key_required, error

DEFAULT_LIMIT, MAX_LIMIT = 10, 100
MAX_OFFSET = 10_000

read_key_required = api_key_required(
    action=READ,
    invalid_code="invalid_key",
    invalid_message="send a valid API key (ingest or read-only) as 'Bearer <key>'",
)


class ParamError(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name, self.message = name, message


def _whole(request: HttpRequest, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not low <= int(raw) <= high:
        raise ParamError(name, f"{name}: must be a whole number from {low} to {high}")
    return int(raw)


def _not_found(customer: str) -> JsonResponse:
    message = f"customer: no customer {customer[:255]!r}"
    return error(404, "customer_not_found", message, field="customer")


def _page_params(request: HttpRequest) -> dict:
    """``limit`` (1-100, default 10) and ``offset`` (0-10,000, default 0)."""
    return {
        "limit": _whole(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        "offset": _whole(request, "offset", default=0, low=0, high=MAX_OFFSET),
    }


@csrf_exempt
@require_GET
@read_key_required
def usage(request: HttpRequest, customer: str) -> JsonResponse:
    account = read_api_account(customer=customer)
    if account is None:
        return _not_found(customer)
    return JsonResponse(read_api_usage(account=account, customer=customer))


def _paged(request: HttpRequest, customer: str, selector) -> JsonResponse:
    """One page of ``selector``'s list for ``customer`` (``limit`` / ``offset``)."""
    account = read_api_account(customer=customer)
    if account is None:
        return _not_found(customer)
    try:
        page = _page_params(request)
    except ParamError as exc:
        return error(400, "invalid_parameter", exc.message, field=exc.name)
    return JsonResponse(selector(account=account, customer=customer, **page))


@csrf_exempt
@require_GET
@read_key_required
def invoices(request: HttpRequest, customer: str) -> JsonResponse:
    return _paged(request, customer, read_api_invoices)


@csrf_exempt
@require_GET
@read_key_required
def alerts(request: HttpRequest, customer: str) -> JsonResponse:
    return _paged(request, customer, read_api_alerts)
