"""Webhook forwarding (like ``stripe listen --forward-to``): an endpoint registered with a
public URL is delivered to a local server, its stored ``url`` unchanged."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import stripe

from stripe_emulator.__main__ import parse_args
from stripe_emulator.forwarding import Forwarding
from stripe_emulator.testing import control, reset, running_emulator

from .conftest import make_client

PUBLIC = "https://meterdesk.example"


def forwarding_post(base_url: str, data: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        base_url + "/_emulator/webhook_forwarding",
        data=json.dumps(data).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_forwarded_delivery_keeps_the_path_and_the_endpoint_url(client, emulator, webhook_receiver):
    status, listed = forwarding_post(emulator, {"from": PUBLIC, "to": webhook_receiver.base_url})
    assert status == 200
    assert listed["data"] == [{"from": PUBLIC, "to": webhook_receiver.base_url}]
    url = f"{PUBLIC}/stripe/webhook/0b6f4a52-3c1e-4f0e-9d55-3c2b1f1f4a10/"
    endpoint = client.v1.webhook_endpoints.create({"url": url, "enabled_events": ["*"]})

    customer = client.v1.customers.create({"email": "fwd@example.com"})

    (delivery,) = webhook_receiver.wait_for(lambda d: len(d) >= 1)
    assert delivery["path"] == "/stripe/webhook/0b6f4a52-3c1e-4f0e-9d55-3c2b1f1f4a10/"
    event = stripe.Webhook.construct_event(delivery["body"], delivery["signature"], endpoint.secret)
    assert (event.type, event.data.object.id) == ("customer.created", customer.id)
    # Stripe's view of the endpoint is unchanged; the log shows where it went.
    assert client.v1.webhook_endpoints.retrieve(endpoint.id).url == url
    (attempt,) = control(emulator, "/_emulator/webhook_deliveries")["data"]
    assert attempt["url"] == webhook_receiver.base_url + delivery["path"]
    assert attempt["status"] == 200


def test_rules_are_listed_replaced_removed_and_cleared_by_reset(emulator):
    assert control(emulator, "/_emulator/webhook_forwarding") == {"object": "list", "data": []}
    forwarding_post(emulator, {"from": PUBLIC + "/", "to": "http://127.0.0.1:1"})
    forwarding_post(emulator, {"from": PUBLIC, "to": "http://127.0.0.1:2/"})  # replaces
    forwarding_post(emulator, {"from": "https://other.example", "to": "http://127.0.0.1:3"})
    assert control(emulator, "/_emulator/webhook_forwarding")["data"] == [
        {"from": PUBLIC, "to": "http://127.0.0.1:2"},
        {"from": "https://other.example", "to": "http://127.0.0.1:3"},
    ]
    status, listed = forwarding_post(emulator, {"from": "https://other.example", "to": None})
    assert status == 200
    assert listed["data"] == [{"from": PUBLIC, "to": "http://127.0.0.1:2"}]
    reset(emulator)
    assert control(emulator, "/_emulator/webhook_forwarding")["data"] == []


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"to": "http://127.0.0.1:1"}, "from"),
        ({"from": PUBLIC}, "to"),
        ({"from": "meterdesk.example", "to": "http://127.0.0.1:1"}, None),
        ({"from": PUBLIC, "to": "ftp://127.0.0.1"}, None),
    ],
)
def test_invalid_rules_are_a_400(emulator, data, param):
    status, body = forwarding_post(emulator, data)
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"].get("param") == param
    assert control(emulator, "/_emulator/webhook_forwarding")["data"] == []


def test_rewrite_matches_whole_segments_and_the_longest_prefix():
    forwarding = Forwarding(
        [(PUBLIC, "http://127.0.0.1:8000"), (PUBLIC + "/special", "http://127.0.0.1:9000/x")]
    )
    assert forwarding.rewrite(PUBLIC + "/stripe/webhook/u/") == (
        "http://127.0.0.1:8000/stripe/webhook/u/"
    )
    assert forwarding.rewrite(PUBLIC + "?a=1") == "http://127.0.0.1:8000?a=1"
    assert forwarding.rewrite(PUBLIC) == "http://127.0.0.1:8000"
    assert forwarding.rewrite(PUBLIC + "/special/hook") == "http://127.0.0.1:9000/x/hook"
    # Another host that merely starts with the same characters is not forwarded.
    assert forwarding.rewrite("https://meterdesk.example.org/hook") == (
        "https://meterdesk.example.org/hook"
    )
    assert forwarding.rewrite("http://meterdesk.example/hook") == "http://meterdesk.example/hook"


def test_command_line_rules_survive_reset(webhook_receiver):
    rule = f"{PUBLIC}={webhook_receiver.base_url}"
    with running_emulator("--forward-webhooks", rule, "--webhook-retry-base", "0.05") as url:
        expected = [{"from": PUBLIC, "to": webhook_receiver.base_url}]
        assert control(url, "/_emulator/webhook_forwarding")["data"] == expected
        forwarding_post(url, {"from": "https://added.example", "to": "http://127.0.0.1:1"})
        reset(url)  # run-time rules go, start-up rules stay
        assert control(url, "/_emulator/webhook_forwarding")["data"] == expected

        client = make_client(url)
        endpoint = client.v1.webhook_endpoints.create(
            {"url": f"{PUBLIC}/hooks/stripe", "enabled_events": ["product.created"]}
        )
        client.v1.products.create({"name": "Forwarded"})
        (delivery,) = webhook_receiver.wait_for(lambda d: len(d) >= 1)
        assert delivery["path"] == "/hooks/stripe"
        stripe.Webhook.construct_event(delivery["body"], delivery["signature"], endpoint.secret)


def test_command_line_rule_must_be_from_equals_to(capsys):
    args = parse_args(["--forward-webhooks", f"{PUBLIC}/=http://127.0.0.1:8000/"])
    assert args.forward_webhooks == [(PUBLIC, "http://127.0.0.1:8000")]
    for bad in ("http://127.0.0.1:8000", f"{PUBLIC}=127.0.0.1:8000"):
        with pytest.raises(SystemExit) as exited:
            parse_args(["--forward-webhooks", bad])
        assert exited.value.code == 2
    assert "--forward-webhooks" in capsys.readouterr().err
