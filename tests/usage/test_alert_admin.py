"""Admin for alert channels: webhook endpoints (secret shown once, then masked; http(s)
only), channel deliveries (read-only, filtered by status, "retry now"), and budget alerts
with their level and resolution in the alert deliveries list."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from billing.models import Account
from tests.usage.webhook_receiver import Receiver
from usage.models import AlertDelivery
from usage.models_budgets import Budget
from usage.models_webhooks import ChannelDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_endpoint_secret_is_shown_once_then_masked(admin_client):
    refused = admin_client.post(
        "/admin/usage/webhookendpoint/add/", {"url": "ftp://ops.example/hook", "enabled": "on"}
    )
    assert refused.status_code == 200
    assert "Enter an http:// or https:// URL." in refused.content.decode()
    assert not WebhookEndpoint.objects.exists()

    added = admin_client.post(
        "/admin/usage/webhookendpoint/add/",
        {"url": "https://ops.example/meterdesk", "description": "Ops", "enabled": "on"},
    )
    assert added.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) == 6 + 48
    first = admin_client.get(added.url).content.decode()  # the page after saving
    assert f"(shown only now; copy it to the receiver): {endpoint.secret}" in first
    for url in (
        "/admin/usage/webhookendpoint/",
        f"/admin/usage/webhookendpoint/{endpoint.pk}/change/",
    ):
        page = admin_client.get(url).content.decode()
        assert endpoint.secret not in page
        assert f"whsec_\u2026{endpoint.secret[-4:]}" in page


def _failed_delivery(url: str, secret: str) -> ChannelDelivery:
    account = Account.objects.create(name="Hooked Ltd", billing_email="h@example.com")
    alert = AlertDelivery.objects.create(
        account=account,
        period_start=T0 - timedelta(days=9),
        period_end=T0 + timedelta(days=22),
        summary="Spend budget: 100% reached, $200.00 of $200.00 (100%)",
        observed=20_000,
        threshold=20_000,
        recipients="h@example.com",
        level=100,
    )
    endpoint = WebhookEndpoint.objects.create(url=url, secret=secret)
    return ChannelDelivery.objects.create(
        alert=alert,
        channel="webhook",
        endpoint=endpoint,
        url=url,
        payload=json.dumps({"id": f"alert_{alert.pk}"}),
        status="failed",
        attempts=6,
        last_status_code=502,
        last_response="Bad gateway from the ops proxy",
    )


def test_deliveries_list_filters_by_status_and_retry_now_sends(
    admin_client, django_capture_on_commit_callbacks
):
    receiver = Receiver(secret="whsec_admin").start()
    try:
        row = _failed_delivery(f"{receiver.url}/hook", "whsec_admin")
        failed = admin_client.get("/admin/usage/channeldelivery/", {"status__exact": "failed"})
        html = failed.content.decode()
        assert failed.context["cl"].result_count == 1
        assert "Bad gateway from the ops proxy" in html and "502" in html
        delivered = admin_client.get(
            "/admin/usage/channeldelivery/", {"status__exact": "delivered"}
        )
        assert delivered.context["cl"].result_count == 0
        assert admin_client.get(f"/admin/usage/channeldelivery/{row.pk}/change/").status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/usage/channeldelivery/",
                {"action": "retry_now", "_selected_action": [row.pk]},
            )
        assert response.status_code == 302
        row.refresh_from_db()
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", 7, 200)
        assert [r.signature_ok for r in receiver.received] == [True]
    finally:
        receiver.stop()


def test_alert_list_shows_budget_level_and_resolution(admin_client):
    from billing.models import Meter

    account = Account.objects.create(name="Levels Inc", billing_email="l@example.com")
    meter = Meter.objects.create(
        event_name="gb", display_name="Data transfer", unit_label="GB", aggregation="sum"
    )
    budget = Budget.objects.create(account=account, kind="units", meter=meter, limit=100)
    AlertDelivery.objects.create(
        account=account,
        budget=budget,
        level=80,
        period_start=T0 - timedelta(days=31),
        period_end=T0,
        summary="Data transfer budget: 80% reached, 80 of 100 GB (80%)",
        observed=80,
        threshold=80,
        recipients="l@example.com",
        sent_at=T0 - timedelta(days=2),
        resolved_at=T0,
        resolution="period ended",
    )
    page = admin_client.get("/admin/usage/alertdelivery/", {"resolved": "resolved"})
    html = page.content.decode()
    assert page.context["cl"].result_count == 1
    assert "Budget: Data transfer" in html and "period ended" in html
    assert (
        admin_client.get("/admin/usage/alertdelivery/", {"resolved": "open"})
        .context["cl"]
        .result_count
        == 0
    )
