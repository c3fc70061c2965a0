"""The emulator: state, webhooks, faults, idempotency and the request pipeline.

:meth:`Emulator.handle` is independent of the HTTP server: faults first (a faulted
request has no effect), then authentication, parameter decoding, routing,
Idempotency-Key replay, the handler (under the store lock) and Stripe's error body.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from urllib.parse import urlsplit

from . import API_VERSION, invoicing, resources  # noqa: F401  (resources registers the routes)
from .errors import StripeError
from .faults import Faults
from .forms import decode_form
from .forwarding import Forwarding
from .idempotency import IdempotencyCache, fingerprint
from .meter_errors import MeterErrorReporter
from .meter_event_stream import MeterEventStream
from .param_rules import check_params
from .request_log import RequestLog
from .routing import Request, Response, match
from .store import Store, random_token
from .webhooks import Dispatcher, emit, set_current_request

_JSON = "application/json"


def json_response(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(status, json.dumps(body, indent=2).encode(), _JSON, headers or {})


class Emulator:
    def __init__(
        self,
        *,
        state_file: str | None = None,
        base_url: str = "http://127.0.0.1:12111",
        faults: Faults | None = None,
        webhook_retry_base: float = 0.2,
        tick_seconds: float = 1.0,
        forwarding: Forwarding | None = None,
        request_log: RequestLog | None = None,
        meter_error_delay: float = 0.5,
        invoice_finalize_delay: int = 3600,
        stream_delay: float = 0.5,
    ):
        self.store = Store(state_file, base_url)
        self.request_log = request_log
        self.faults = faults or Faults()
        self.idempotency = IdempotencyCache()
        self.dispatcher = Dispatcher(
            self.store, retry_base=webhook_retry_base, forwarding=forwarding
        )
        self.tick_seconds = tick_seconds
        self.meter_errors = MeterErrorReporter(self, meter_error_delay)
        self.meter_event_stream = MeterEventStream(self, stream_delay)
        self.invoice_finalize_delay = invoice_finalize_delay  # clock seconds, renewal drafts
        self._stop = threading.Event()
        self._deferred: list[tuple[str, str, str]] = []

    # -- background work --------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._real_time_loop, name="periods", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.meter_event_stream.drain()  # what was answered is applied before state is saved

    def _real_time_loop(self) -> None:
        """Close the periods of subscriptions not on a test clock as real time passes."""
        while not self._stop.wait(self.tick_seconds):
            try:
                with self.store.lock:
                    set_current_request(None, None)
                    if invoicing.close_due_periods(self, clock_id=None):
                        self.store.mark_dirty()
                self.store.flush()
            except Exception:  # keep the loop alive; the error is a bug to fix
                traceback.print_exc()

    def emit(self, event_type: str, obj: dict, previous: dict | None = None) -> None:
        deliveries = emit(self.store, event_type, obj, previous)
        if self.store.journal is not None:  # inside a request: wait for its outcome
            self._deferred.extend(deliveries)
        else:
            for delivery in deliveries:
                self.dispatcher.enqueue(*delivery)

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.idempotency.clear()
            self.faults.restore()
            self.meter_errors.clear()
            self.meter_event_stream.clear()
            self.dispatcher.reset()
            self.dispatcher.forwarding.reset()
            self.store.save()

    # -- requests ---------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers, body: bytes) -> Response:
        response = self._handle(method, raw_path, headers, body)
        if self.request_log is not None:
            self.request_log.record(method, raw_path, headers, body, response.status)
        return response

    def _handle(self, method: str, raw_path: str, headers, body: bytes) -> Response:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        request_id = "req_" + random_token(14)
        base_headers = {"Request-Id": request_id}
        if path.startswith("/v1/"):
            base_headers["Stripe-Version"] = headers.get("Stripe-Version") or API_VERSION
        api = path.startswith(("/v1/", "/v2/")) or path in ("/v1", "/v2")
        v2 = path.startswith("/v2/")
        try:
            if api:
                fault = self.faults.decide()
                if fault is not None:
                    base_headers["Stripe-Should-Retry"] = "true"
                    raise fault
            route, args, _ = match(method, path)
            if route is None:
                if api or path.startswith("/_emulator"):
                    raise StripeError(
                        404,
                        f"Unrecognized request URL ({method}: {path}). Please see "
                        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                    )
                return Response(404, b"Not found", "text/plain")
            self._authenticate(route.auth, headers, v2)
            if route.auth == "session":  # the meter event stream: its token before its body
                self.meter_event_stream.check_refused()
                self.meter_event_stream.check_token(headers)
            params = self._params(method, parts.query, headers, body, v2)
            if api:  # Stripe's parameter rules, before the handler (param_rules.json)
                check_params(method, route.template, params)
            request = Request(self, method, path, params, headers, args, request_id)
            key = headers.get("Idempotency-Key") if method in ("POST", "DELETE") else None
            set_current_request(request_id, key)
            hold = self.faults.hold_after_record(method, path) if api else 0.0
            response = self._run(route, request, key, base_headers, remember=not hold)
            if hold and response.status == 200:  # recorded; the client times out waiting
                time.sleep(hold)
            return response
        except StripeError as exc:
            return json_response(exc.status, exc.body(), {**base_headers, **exc.headers})

    def _run(
        self, route, request: Request, key: str | None, headers: dict, *, remember: bool = True
    ) -> Response:
        with self.store.lock:
            fp = fingerprint(request.method, request.path, request.params)
            if key:
                headers["Idempotency-Key"] = key
                stored = self.idempotency.lookup(key, fp)
                if stored is not None:
                    headers["Idempotent-Replayed"] = "true"
                    return json_response(stored.status, stored.body, headers)
            self.store.journal, self._deferred = [], []
            try:
                result = route.handler(request)
            except StripeError as exc:
                result = (exc.status, exc.body())
                headers.update(exc.headers)
                self.store.undo_additions()
                self._deferred = []
            except Exception:  # a bug: answer like Stripe's 500 and keep serving
                traceback.print_exc()
                result = (500, StripeError(500, "Internal error.", type="api_error").body())
                self.store.undo_additions()
                self._deferred = []
            finally:
                for delivery in self._deferred:
                    self.dispatcher.enqueue(*delivery)
                self.store.journal, self._deferred = None, []
            if isinstance(result, Response):
                result.headers.update(headers)
                return result
            status, body = result if isinstance(result, tuple) else (200, result)
            if key and remember:
                self.idempotency.remember(key, fp, status, body)
            if request.method in ("POST", "DELETE"):
                self.store.mark_dirty()
        if status == 402:
            headers.setdefault("Stripe-Should-Retry", "false")
        return json_response(status, body, headers)

    @staticmethod
    def _authenticate(kind: str, headers, v2: bool) -> None:
        if kind == "none":
            return
        auth = headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if not token or scheme.lower() != "bearer":
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        if kind == "session":
            return  # checked against the stream's sessions next (MeterEventStream.check_token)
        if not token.startswith("sk_test_") or len(token) <= len("sk_test_"):
            shown = token[:8] + "*" * max(0, len(token) - 12) + token[-4:]
            raise StripeError(401, f"Invalid API Key provided: {shown}", code="api_key_invalid")

    @staticmethod
    def _params(method: str, query: str, headers, body: bytes, v2: bool) -> dict:
        params = decode_form(query) if query else {}
        if method != "POST" or not body:
            return params
        text = body.decode("utf-8", errors="replace")
        content_type = (headers.get("Content-Type") or "").lower()
        if v2 or content_type.startswith("application/json"):
            try:
                decoded = json.loads(text) if text.strip() else {}
            except ValueError:
                raise StripeError(400, "Invalid JSON body.") from None
            if not isinstance(decoded, dict):
                raise StripeError(400, "The JSON body must be an object.")
            params.update(decoded)
        else:
            params.update(decode_form(text))
        return params
