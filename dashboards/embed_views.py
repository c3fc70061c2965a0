"""The embeddable usage widget: one customer's usage cards and charts in the operator's app.

- ``POST /api/v1/embed_tokens`` (``Authorization: Bearer <ingest or read key>``, body
  ``{"customer": "cus_...", "ttl_seconds": 900}``) mints a signed, expiring token for one
  customer (:mod:`dashboards.embed_tokens`) and answers the widget's URL.
- ``GET /embed/usage?token=...`` is the widget: the current period's totals, the meter
  cards and the charts, read-only, with no session, no navigation, no links into the
  portal and no forms. Its chart data is ``GET /embed/usage/chart/<meter>.json?token=...``.

Every widget response may be framed only by ``EMBED_ALLOWED_ORIGINS``
(``Content-Security-Policy: frame-ancestors ...``, ``'none'`` when none are set), and
is exempt from the portal's ``X-Frame-Options: DENY`` -- these views only.
"""

import json
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from billing.mirror.customers import account_for_customer_id
from billing.mirror.subscriptions import subscription_state_for_account
from dashboards.chart import chart_payload
from dashboards.embed_tokens import (
    DEFAULT_TTL_SECONDS,
    EmbedTokenRefused,
    embed_token_account,
    embed_token_create,
)
from usage.selectors.rollups import latest_event_at
from usage.selectors.summaries import period_summary
from usage.services.keys import ingest_key_authenticate

TOKEN_FIELDS = ("customer", "ttl_seconds")
REFUSALS = {
    "expired": "This usage view has expired. Reload the page around it to see your usage again.",
    "invalid": "This usage view's link is not valid. Reload the page around it to try again.",
}


def _error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def frame_ancestors() -> str:
    """The CSP the widget is served with: the configured origins, or ``'none'``.

    Entries with whitespace, ``;`` or ``,`` are left out: they would end the source list
    or the directive and let a mistyped setting write policy of its own."""
    origins = [
        origin.strip()
        for origin in settings.EMBED_ALLOWED_ORIGINS
        if origin.strip() and not any(c in origin.strip() for c in " \t\r\n;,")
    ]
    return "frame-ancestors " + (" ".join(origins) or "'none'")


def embeddable(view):
    """Framable by the allowed origins only, never cached (token-bound, live numbers)."""

    @xframe_options_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = frame_ancestors()
        response["Cache-Control"] = "private, no-store"
        return response

    return wrapper


# --- the token endpoint (the operator's backend) -------------------------------------


def _api_key(request: HttpRequest):
    scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return ingest_key_authenticate(raw_key=raw_key.strip())


def _ttl(body: dict) -> int | None:
    """``ttl_seconds`` (default 900), or None when it is not a whole number in range."""
    ttl = body.get("ttl_seconds", DEFAULT_TTL_SECONDS)
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        return None
    return ttl if 1 <= ttl <= settings.EMBED_TOKEN_MAX_TTL_SECONDS else None


@csrf_exempt
@require_POST
def embed_token_mint(request: HttpRequest) -> JsonResponse:
    key = _api_key(request)
    if key is None:
        response = _error(401, "invalid_key", "send a valid ingest or read key as 'Bearer <key>'")
        response["WWW-Authenticate"] = 'Bearer realm="meterdesk"'
        return response
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        return _error(413, "body_too_large", "the request body is too large")
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _error(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "invalid_json", 'the body must be {"customer": "cus_..."}')
    unknown = sorted(name for name in body if name not in TOKEN_FIELDS)
    if unknown:
        field = unknown[0][:100]
        return _error(400, "unknown_parameter", f"{field}: unknown parameter", field=field)
    customer = body.get("customer")
    if customer is None or customer == "":
        return _error(
            400, "missing_parameter", "customer: this parameter is required", field="customer"
        )
    if not isinstance(customer, str) or len(customer) > 255:
        return _error(
            400, "invalid_parameter", "customer: must be a Stripe customer id", field="customer"
        )
    ttl = _ttl(body)
    if ttl is None:
        most = settings.EMBED_TOKEN_MAX_TTL_SECONDS
        return _error(
            400,
            "invalid_parameter",
            f"ttl_seconds: must be a whole number of seconds from 1 to {most}",
            field="ttl_seconds",
        )
    account = account_for_customer_id(customer_id=customer) if "\x00" not in customer else None
    if account is None:
        return _error(
            404, "customer_not_found", f"customer: no account has {customer!r}", field="customer"
        )
    minted = embed_token_create(account=account, key=key, ttl_seconds=ttl)
    path = reverse("embed_usage") + "?" + urlencode({"token": minted.token})
    return JsonResponse(
        {
            "token": minted.token,
            "customer": customer,
            "expires_at": minted.expires_at.isoformat().replace("+00:00", "Z"),
            "url": settings.SITE_URL + path,
        }
    )


# --- the widget (in the customer's browser, inside the operator's iframe) ------------


def _refused(request: HttpRequest, reason: str) -> HttpResponse:
    context = {"reason": reason, "message": REFUSALS[reason]}
    if request.htmx:
        # A widget left open past its expiry: the numbers give way to the notice, and
        # the polling stops.
        response = render(request, "dashboards/embed_refused.html#notice", context)
        return HttpResponseStopPolling(response.content)
    return render(request, "dashboards/embed_refused.html", context, status=403)


@require_GET
@embeddable
def embed_usage(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("token", "")
    try:
        account = embed_token_account(token=token)
    except EmbedTokenRefused as exc:
        return _refused(request, exc.reason)
    state = subscription_state_for_account(account=account)
    summary = period_summary(account=account, state=state, offset=0) if state else None
    context = {
        "account": account,
        "state": state,
        "summary": summary,
        "token": token,
        "last_event_at": latest_event_at(account=account),
    }
    if request.htmx:
        response = render(request, "dashboards/embed_usage.html#summary", context)
        if summary is None or summary.closed:
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "dashboards/embed_usage.html", context)


@require_GET
@embeddable
def embed_usage_chart(request: HttpRequest, event_name: str) -> JsonResponse:
    try:
        account = embed_token_account(token=request.GET.get("token", ""))
    except EmbedTokenRefused as exc:
        return _error(403, f"token_{exc.reason}", REFUSALS[exc.reason])
    state = subscription_state_for_account(account=account)
    item = next(
        (i for i in (state.metered_items if state else ()) if i.meter.event_name == event_name),
        None,
    )
    if item is None:
        return _error(404, "meter_not_found", "no such meter on this customer's plan")
    granularity = request.GET.get("granularity", "day")
    if granularity not in ("day", "hour"):
        return _error(400, "invalid_granularity", "granularity: day or hour", field="granularity")
    payload = chart_payload(
        account=account, state=state, item=item, offset=0, granularity=granularity
    )
    return JsonResponse(payload)
