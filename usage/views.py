"""The usage API: thin views over ``usage.services.ingest`` and ``usage.selectors``."""

from functools import wraps

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from usage.api_body import BodyError, parse_events
from usage.forms import UsageSummaryForm
from usage.selectors.summary_api import usage_summary
from usage.services.alert_scheduling import alerts_schedule_evaluation
from usage.services.ingest import MAX_BATCH, usage_events_ingest
from usage.services.keys import INGEST, READ, ingest_key_allows, ingest_key_authenticate


def error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def api_key_required(
    *,
    action: str,
    invalid_code: str = "unauthorized",
    invalid_message: str = "send a valid ingest key as 'Bearer <key>'",
):
    """``Authorization: Bearer <key>`` or 401 ``invalid_code``; a key whose scope does
    not allow ``action`` (a read key sending usage) is 403 ``key_cannot_<action>``."""

    def decorate(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            scheme, _, raw_key = request.headers.get("Authorization", "").partition(" ")
            key = (
                ingest_key_authenticate(raw_key=raw_key.strip())
                if scheme.lower() == "bearer"
                else None
            )
            if key is None:
                response = error(401, invalid_code, invalid_message)
                response["WWW-Authenticate"] = 'Bearer realm="meterdesk-usage"'
                return response
            if not ingest_key_allows(key=key, action=action):
                return error(
                    403, f"key_cannot_{action}", f"this key is {key.scope}-only: it cannot {action}"
                )
            request.ingest_key = key
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


@csrf_exempt
@require_POST
@api_key_required(action=INGEST)
def events(request: HttpRequest) -> JsonResponse:
    if request.content_type != "application/json":
        return error(415, "unsupported_media_type", "send the body as application/json")
    try:
        batch = parse_events(request.body, max_batch=MAX_BATCH)
    except RequestDataTooBig:
        return error(413, "batch_too_large", "the request body is too large")
    except BodyError as exc:
        return error(exc.status, exc.code, exc.message)
    result = usage_events_ingest(events=batch)
    if result.account_ids:
        alerts_schedule_evaluation(account_ids=result.account_ids)
    return _json(result.as_dict(), status=202)


def _json(data: dict, *, status: int) -> HttpResponse:
    """JsonResponse's answer, encoded by orjson (a batch's answer lists 1,000
    identifiers); json's when orjson refuses (a lone surrogate in a rejected identifier)."""
    try:
        body = orjson.dumps(data)
    except TypeError:
        return JsonResponse(data, status=status)
    return HttpResponse(body, status=status, content_type="application/json")


@csrf_exempt
@require_GET
@api_key_required(action=READ)
def summary(request: HttpRequest) -> JsonResponse:
    form = UsageSummaryForm(request.GET)
    if not form.is_valid():
        status, code, message, field = form.first_error()
        return error(status, code, message, field=field)
    data = form.cleaned_data
    summary = usage_summary(
        account=data["account"],
        meter=data["meter"],
        start=data["start"],
        end=data["end"],
        granularity=data["granularity"],
    )
    return JsonResponse({"customer": data["customer"], **summary})
