"""The read API for the operator's own app: thin views over ``usage.selectors.read_api``.

``GET /api/v1/customers/{customer}/usage``, ``/invoices`` and ``/alerts``, with an
ingest key or a read-only key (``Authorization: Bearer <key>``); ``{customer}`` is the
Stripe customer id. Documented in ``docs/openapi.yaml``. Errors are
``{"error": {"code", "message"[, "field"]}}``: 401 ``invalid_key``, 404
``customer_not_found``, 400 ``invalid_parameter`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable

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


def _customer_view(answer: Callable[..., dict], *, paginated: bool):
    @csrf_exempt
    @require_GET
    @read_key_required
    def view(request: HttpRequest, customer: str) -> JsonResponse:
        account = read_api_account(customer=customer)
        if account is None:
            return error(
                404, "customer_not_found", f"customer: no customer {customer[:255]!r}",
                field="customer",
            )  # fmt: skip
        kwargs = {}
        if paginated:
            try:
                kwargs["limit"] = _whole(
                    request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT
                )
                kwargs["offset"] = _whole(request, "offset", default=0, low=0, high=MAX_OFFSET)
            except ParamError as exc:
                return error(400, "invalid_parameter", exc.message, field=exc.name)
        return JsonResponse(answer(account=account, customer=customer, **kwargs))

    view.__name__ = answer.__name__.removeprefix("read_api_")
    return view


usage = _customer_view(read_api_usage, paginated=False)
invoices = _customer_view(read_api_invoices, paginated=True)
alerts = _customer_view(read_api_alerts, paginated=True)
