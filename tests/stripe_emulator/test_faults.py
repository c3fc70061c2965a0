"""Acceptance 5: under injected faults, a client that retries with the same
Idempotency-Key ends with exactly the objects it meant to create."""

from __future__ import annotations

import json
import urllib.request

import pytest
import stripe

from stripe_emulator.testing import control, running_emulator

from .conftest import make_client

RETRYABLE = (stripe.RateLimitError, stripe.APIError, stripe.APIConnectionError)


def create_with_retries(call, params: dict, key: str, log: list) -> object:
    """Retry a create with the same Idempotency-Key until it is answered."""
    for _ in range(50):
        try:
            return call(params, {"idempotency_key": key})
        except RETRYABLE as exc:
            log.append(type(exc).__name__)
    raise AssertionError(f"{key} never succeeded")


def test_retrying_with_the_same_idempotency_key_creates_each_object_once(tmp_path):
    log_file = (tmp_path / "emulator.log").open("w")
    args = (
        "--fault-rate",
        "0.3",
        "--fault-statuses",
        "429,500",
        "--latency-ms",
        "2",
        "--fault-seed",
        "3",
    )
    with running_emulator(*args, log=log_file) as url:
        client = make_client(url, max_network_retries=0)
        failures: list[str] = []
        customers = [
            create_with_retries(
                client.v1.customers.create,
                {"email": f"c{i}@example.com"},
                f"customer-{i}",
                failures,
            )
            for i in range(12)
        ]
        prod = create_with_retries(client.v1.products.create, {"name": "Plan"}, "product", failures)
        prices = [
            create_with_retries(
                client.v1.prices.create,
                {
                    "product": prod.id,
                    "currency": "usd",
                    "unit_amount": 100 * (i + 1),
                    "recurring": {"interval": "month"},
                },
                f"price-{i}",
                failures,
            )
            for i in range(4)
        ]
        subs = [
            create_with_retries(
                client.v1.subscriptions.create,
                {"customer": c.id, "items": [{"price": prices[i % 4].id}]},
                f"subscription-{i}",
                failures,
            )
            for i, c in enumerate(customers[:6])
        ]
        # A response lost on the way back: the same key replays the stored answer.
        replay = create_with_retries(
            client.v1.customers.create, {"email": "c0@example.com"}, "customer-0", failures
        )
        assert replay.id == customers[0].id

        control(url, "/_emulator/faults", {"rate": 0})
        assert "RateLimitError" in failures and "APIError" in failures  # faults did happen
        listed = client.v1.customers.list({"limit": 100}).data
        assert sorted(c.email for c in listed) == sorted(f"c{i}@example.com" for i in range(12))
        assert {c.id for c in listed} == {c.id for c in customers}
        assert len(client.v1.products.list({"limit": 100}).data) == 1
        assert len(client.v1.prices.list({"limit": 100}).data) == 4
        assert {s.id for s in client.v1.subscriptions.list({"limit": 100}).data} == {
            s.id for s in subs
        }
        # One first invoice per subscription, nothing doubled.
        assert len(client.v1.invoices.list({"limit": 100}).data) == 6
    log_file.close()


def test_faults_at_run_time_and_idempotency_errors(emulator):
    client = make_client(emulator, max_network_retries=0)
    try:
        assert (
            control(emulator, "/_emulator/faults", {"rate": 1, "statuses": "429", "latency_ms": 0})[
                "rate"
            ]
            == 1
        )
        with pytest.raises(stripe.RateLimitError):
            client.v1.customers.create({"email": "x@example.com"}, {"idempotency_key": "k1"})
    finally:
        control(emulator, "/_emulator/faults", {"rate": 0})
    # The faulted request had no effect, and its key is free to retry.
    assert client.v1.customers.list().data == []
    first = client.v1.customers.create({"email": "x@example.com"}, {"idempotency_key": "k1"})
    # Same key, other parameters: idempotency_error.
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create({"email": "y@example.com"}, {"idempotency_key": "k1"})
    # Same key, same parameters: the stored response, flagged as replayed.
    request = urllib.request.Request(
        emulator + "/v1/customers",
        data=b"email=x%40example.com",
        method="POST",
        headers={"Authorization": "Bearer sk_test_1", "Idempotency-Key": "k1"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Idempotent-Replayed"] == "true"
        assert json.loads(response.read())["id"] == first.id
    assert len(client.v1.customers.list().data) == 1


def test_reset_restores_the_faults_the_emulator_started_with(emulator):
    """A test that turns faults on and fails before turning them off leaves nothing for
    the next one: every test's stripe_emulator fixture resets the emulator."""
    client = make_client(emulator, max_network_retries=0)
    control(emulator, "/_emulator/faults", {"rate": 1, "statuses": "500", "latency_ms": 5})
    with pytest.raises(stripe.APIError):
        client.v1.customers.create({"email": "x@example.com"})
    control(emulator, "/_emulator/reset", {})
    faults = control(emulator, "/_emulator/faults", {})
    assert (faults["rate"], faults["latency_ms"]) == (0.0, 0)
    assert client.v1.customers.create({"email": "x@example.com"}).email == "x@example.com"
