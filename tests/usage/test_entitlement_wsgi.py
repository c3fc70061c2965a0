"""The WSGI fast path for the entitlement check (``usage.entitlement_wsgi``, installed in
``config.wsgi``): the same status and JSON bytes as the Django view, from Redis and from
the database; everything else goes to Django.

Checks are made at Sep 5 2026 12:00 UTC (time_machine) on a test clock frozen at Sep 1
(the fixtures of ``test_entitlements``).
"""

import functools
import io
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import pytest
import time_machine
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections

from config import wsgi
from tests.usage import test_entitlements as ent
from usage import entitlement_wsgi
from usage.models import Budget

pytestmark = pytest.mark.django_db

CHECK_URL, NOW = ent.CHECK_URL, ent.NOW
# The fixtures of test_entitlements: Redis or the database, customers on a test clock.
entitlement_redis_url, state_mode = ent.entitlement_redis_url, ent.state_mode
capped_plan, on_clock, backend = ent.capped_plan, ent.on_clock, ent.backend


@pytest.fixture
def closes(monkeypatch) -> list[str]:
    """Calls of close_old_connections, not made: in a test the connection is inside the
    test's transaction (Django's test client protects it the same way)."""
    calls: list[str] = []
    monkeypatch.setattr(entitlement_wsgi, "close_old_connections", lambda: calls.append("close"))
    return calls


@functools.cache
def wrapped():
    """The wrapper as config.wsgi installs it, built under the test settings (it reads
    ALLOWED_HOSTS once)."""
    return entitlement_wsgi.entitlement_fast_path(WSGIHandler())


def test_config_wsgi_installs_the_fast_path():
    assert wsgi.application.__qualname__ == "entitlement_fast_path.<locals>.fast"


def call(environ: dict, start_response) -> bytes:
    """The wrapper's answer, with close_old_connections off for the
    requests that reach Django, as the test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        return b"".join(wrapped()(environ, start_response))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def fast(method: str, path: str, params: dict | None = None, key: str | None = None):
    """(status code, headers, body) from the WSGI wrapper, called directly."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": urlencode(params or {}),
        "HTTP_HOST": "testserver",
        "wsgi.input": io.BytesIO(b""),
    }
    if key is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    setup_testing_defaults(environ)
    started = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=int(status.split(" ")[0]), headers=dict(headers))

    body = call(environ, start_response)
    return started["status"], started["headers"], body


def same(backend, method: str, params: dict, key: str | None, status: int) -> bytes:
    """The fast path's answer equals the Django view's (the test client)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    django = backend.client.generic(method, f"{CHECK_URL}?{urlencode(params)}", headers=headers)
    code, fast_headers, body = fast(method, CHECK_URL, params, key)
    assert (code, body) == (django.status_code, django.content) and code == status, body
    assert fast_headers["Content-Type"] == django["Content-Type"] == "application/json"
    assert fast_headers.get("WWW-Authenticate") == django.get("WWW-Authenticate")
    assert int(fast_headers["Content-Length"]) == len(body)
    return body


def test_the_fast_path_answers_as_the_django_view(
    state_mode, on_clock, backend, ingest_key, closes
):
    account, _, customer = on_clock("capped")
    # $500 spend cap; $100 base + data transfer on graduated tiers (test_entitlements):
    # 7,999 GB = 10,000 + 10,000 + (500 + 22,500) + 6,999 x 1 = 49,999¢, 1 GB left.
    Budget.objects.create(
        account=account, kind="spend", currency="usd", limit=50_000, hard_cap=True
    )
    gb = {"customer": customer, "event_name": "data_transfer_gb"}
    with time_machine.travel(NOW, tick=False):
        backend.ingest(customer, "data_transfer_gb", [7_999], "gb")
        body = same(backend, "GET", gb, ingest_key, 200)
        assert body == (
            b'{"allowed": true, "reason": "ok", "remaining": 1, '
            b'"resets_at": "2026-10-01T00:00:00Z"}'
        )
        body = same(backend, "GET", {**gb, "quantity": "2"}, ingest_key, 200)
        assert b'"reason": "cap_reached"' in body
        body = same(backend, "GET", gb, "mk_wrong", 401)
        assert b'"code": "unauthorized"' in body
        body = same(backend, "GET", gb, None, 401)
        body = same(backend, "GET", {"event_name": "api_calls"}, ingest_key, 400)
        assert b'"code": "missing_parameter"' in body and b'"field": "customer"' in body
        body = same(backend, "GET", {**gb, "quantity": "1.5"}, ingest_key, 400)
        assert b'"field": "quantity"' in body
        body = same(backend, "PUT", gb, ingest_key, 405)
        assert b'"code": "method_not_allowed"' in body
        same(backend, "PUT", gb, None, 401)  # the key first, as the view
    assert len(closes) == 2 * 8  # before and after each of the 8 fast-path requests


def test_other_requests_go_to_django(ingest_key, closes):
    # Another path: Django's URL resolver (a 404 page, not the check's JSON).
    status, _, body = fast("GET", CHECK_URL + "/", {"customer": "cus_x"}, ingest_key)
    assert status == 404 and body.startswith(b"<!doctype html>")
    # A batch POST: the Django view (415: no JSON body), not the fast path.
    status, _, body = fast("POST", CHECK_URL, {}, ingest_key)
    assert status == 415 and b'"code": "unsupported_media_type"' in body
    assert closes == []  # the fast path did not run
    # The events API, its own view: 401 without a key.
    status, _, body = fast("POST", "/api/v1/usage/events")
    assert status == 401


def test_a_host_django_would_refuse_goes_to_django(ingest_key, closes):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": CHECK_URL,
        "HTTP_HOST": "evil.example",
        "HTTP_AUTHORIZATION": f"Bearer {ingest_key}",
        "wsgi.input": io.BytesIO(b""),
    }
    setup_testing_defaults(environ)
    statuses = []
    call(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses[0].startswith("400") and closes == []  # DisallowedHost, by Django
