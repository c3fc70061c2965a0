"""The benchmarks' URLs: the product's, plus a trivial view that is the same-run
baseline of request-level benchmarks (the entitlement check): the whole middleware stack
and gunicorn, no application work. Only ``benchmarks.settings`` uses this module."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET

from config.urls import urlpatterns as product_urlpatterns


@require_GET
def trivial(request: HttpRequest) -> JsonResponse:
    """An answer the size of an entitlement check's, computed from nothing."""
    return JsonResponse(
        {"allowed": True, "reason": "ok", "remaining": 1000, "resets_at": "2026-12-01T00:00:00Z"}
    )


urlpatterns = [path("bench/trivial", trivial, name="bench_trivial"), *product_urlpatterns]
