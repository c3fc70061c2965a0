"""The emulator runs as a subprocess (as it does for Meterdesk) and is spoken to over HTTP
with the real stripe-python client."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from stripe_emulator.testing import reset, running_emulator


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory):
    log = (tmp_path_factory.mktemp("emulator") / "emulator.log").open("w")
    with running_emulator("--webhook-retry-base", "0.05", "--tick", "0.2", log=log) as url:
        yield url
    log.close()


@pytest.fixture
def emulator(emulator_url):
    """The base URL of a freshly reset emulator."""
    reset(emulator_url)
    yield emulator_url


def make_client(base_url: str, api_key: str = "sk_test_123", **kwargs) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key, base_addresses={"api": base_url, "meter_events": base_url}, **kwargs
    )


@pytest.fixture
def client(emulator) -> stripe.StripeClient:
    return make_client(emulator)


class Receiver:
    """A local webhook endpoint that records every delivery (and can fail the first few)."""

    def __init__(self, fail_first: int = 0):
        self.deliveries: list[dict] = []
        self.fail_first = fail_first
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.deliveries.append(
                    {
                        "path": self.path,
                        "body": body,
                        "signature": self.headers["Stripe-Signature"],
                        "type": json.loads(body)["type"],
                    }
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base_url}/webhook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.deliveries):
                return self.deliveries
            time.sleep(0.05)
        raise AssertionError(
            f"webhooks not delivered in time: {[d['type'] for d in self.deliveries]}"
        )

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()
