"""Webhook signatures, as dj-stripe verifies them (stripe.WebhookSignature.verify_header).

Stripe's documented scheme (https://docs.stripe.com/webhooks#verify-manually): the header
is ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the endpoint's
secret>``. Against the emulator a real signed delivery is verified, and its ``v1`` is
recomputed by that scheme. Real Stripe cannot deliver to this machine, so there the
contract is only that a header built by the documented scheme verifies and a tampered body
does not: it checks stripe-python against Stripe's documentation, not Stripe's servers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe

pytestmark = pytest.mark.contract


def documented_signature(secret: str, timestamp: int, body: str) -> str:
    signed = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _header_parts(header: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in header.split(","))


def test_webhook_signature_verifies_and_refuses_a_tampered_body(backend, request):
    if backend.is_emulator:
        receiver = request.getfixturevalue("webhook_receiver")
        endpoint = backend.client.v1.webhook_endpoints.create(
            {"url": receiver.url, "enabled_events": ["customer.created"]}
        )
        secret = endpoint.secret
        _clock, customer = backend.clock_customer()
        deliveries = receiver.wait_for(lambda d: any(customer.id in x["body"] for x in d))
        delivery = next(d for d in deliveries if customer.id in d["body"])
        body, header = delivery["body"], delivery["signature"]
        parts = _header_parts(header)
        assert parts["v1"] == documented_signature(secret, int(parts["t"]), body)
        assert abs(int(parts["t"]) - time.time()) < 300
    else:
        secret = "whsec_meterdesk_contract_local"
        timestamp = int(time.time())
        body = json.dumps({"id": "evt_meterdesk_contract", "type": "customer.created"})
        header = f"t={timestamp},v1={documented_signature(secret, timestamp, body)}"

    assert stripe.WebhookSignature.verify_header(body, header, secret, tolerance=300)
    tampered = body.replace('"customer.created"', '"customer.deleted"')
    assert tampered != body
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(tampered, header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, header, "whsec_someone_else", tolerance=300)
