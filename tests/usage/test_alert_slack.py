"""Issue 16: the account's Slack URL (validation by field with a code, roles) and the SSRF
guard every alert POST goes through (``usage.outbound_http``): private, loopback,
link-local hosts refused before connecting unless ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS."""

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import requests
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from billing.models import Account, Membership
from tests.factories import make_user
from tests.usage.webhook_receiver import Receiver
from usage.models import AlertDelivery
from usage.models_webhooks import ChannelDelivery, WebhookEndpoint
from usage.outbound_http import (
    OutboundRefused,
    _PinnedAdapter,
    address_is_public,
    guarded_post,
    resolve_checked,
)
from usage.services.alert_channel_send import channel_deliveries_send_due
from usage.services.alert_slack import (
    slack_test_send,
    slack_url_masked,
    slack_url_remove,
    slack_url_set,
)

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


@pytest.fixture
def guarded(settings):
    settings.ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = False


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def _account(name="Hooked Ltd") -> Account:
    return Account.objects.create(name=name, billing_email="h@example.com")


# The guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata (link-local)
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),  # reserved
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("100.64.0.1", False),  # carrier-grade NAT: not global
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
    ],
)
def test_address_is_public(address, public):
    assert address_is_public(address) is public


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/hook",  # a hostname that resolves to loopback
        "http://[::1]:9/hook",
    ],
)
def test_the_guard_refuses_private_hosts_before_connecting(guarded, url, monkeypatch):
    def no_connect(*args, **kwargs):
        raise AssertionError("connected")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    with pytest.raises(OutboundRefused, match="non-public address"):
        guarded_post(url, data=b"{}", headers={}, timeout=(1, 1))


def test_a_url_with_an_impossible_port_is_refused_not_raised(guarded):
    with pytest.raises(OutboundRefused, match="not a valid URL"):
        resolve_checked("https://hooks.example.test:99999/x")


def test_a_hostname_is_refused_when_any_of_its_addresses_is_private(guarded, monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(OutboundRefused, match=r"non-public address \(10\.0\.0\.1\)"):
        resolve_checked("https://mixed.example.test/hook")


def test_the_connection_goes_to_the_address_checked_with_the_host_header_kept(
    settings, receiver, monkeypatch
):
    """Resolved once (no second lookup a DNS rebinding could answer differently)."""
    settings.ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = True
    port = receiver.server.server_address[1]
    lookups = []

    def resolve(host, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with guarded_post(
        f"http://rebind.example.test:{port}/hook", data=b"{}", headers={}, timeout=(2, 2)
    ) as response:
        assert response.status_code == 200
    # The name is looked up once; the connection then "resolves" only the IP literal.
    assert lookups == ["rebind.example.test", "127.0.0.1"]
    assert receiver.received[0].headers["Host"] == f"rebind.example.test:{port}"


def test_https_keeps_the_hostname_for_sni_and_the_certificate():
    adapter = _PinnedAdapter(address="93.184.215.14", hostname="hooks.slack.com")
    request = requests.Request("POST", "https://hooks.slack.com/services/x").prepare()
    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)
    assert host_params == {"scheme": "https", "host": "93.184.215.14", "port": None}  # 443
    assert pool_kwargs["server_hostname"] == "hooks.slack.com"
    assert pool_kwargs["assert_hostname"] == "hooks.slack.com"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.9.8.7/hook", "http://169.254.169.254/"]
)
def test_a_refused_webhook_is_recorded_failed_and_not_retried(guarded, url):
    alert = AlertDelivery.objects.create(
        account=_account(),
        period_start=T0 - timedelta(days=9),
        period_end=T0 + timedelta(days=22),
        summary="Spend budget: 80% reached",
        observed=16_000,
        threshold=16_000,
        recipients="h@example.com",
    )
    endpoint = WebhookEndpoint.objects.create(url=url, secret="whsec_x")
    row = ChannelDelivery.objects.create(
        alert=alert, channel="webhook", endpoint=endpoint, url=url, payload="{}"
    )
    with time_machine.travel(T0, tick=False):
        assert channel_deliveries_send_due() == {"failed": 1}
    row.refresh_from_db()
    assert row.status == ChannelDelivery.Status.FAILED
    assert row.attempts == 1 and row.next_attempt_at is None and row.last_status_code is None
    assert row.last_error.startswith("refused: host ")
    assert "non-public address" in row.last_error
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        assert channel_deliveries_send_due() == {}  # never retried by beat


@pytest.mark.django_db
def test_the_receiver_on_127_0_0_1_is_reached_when_private_hosts_are_allowed(settings, receiver):
    settings.ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = True
    account = _account()
    account.slack_webhook_url = f"{receiver.url}/services/T/B/x"
    account.save()
    result = slack_test_send(account=account, staff=True)
    assert (result.status_code, result.error, result.ok) == (200, "", True)
    assert receiver.received[0].json == {
        "text": "Meterdesk test message: alerts for *Hooked Ltd* will be posted here."
    }


# The account's URL ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("", "slack_url_required", "enter a URL"),
        ("not a url", "slack_url_invalid", "enter a full URL"),
        ("ftp://hooks.example.com/x", "slack_url_invalid", "enter a full URL"),
        ("http://hooks.slack.com/services/T/B/x", "slack_url_not_https", "https://"),
        ("https://hooks.slack.com/" + "x" * 477, "slack_url_too_long", "at most 500"),
        ("https://127.0.0.1/hook", "slack_url_private_host", "private, loopback"),
        ("https://10.0.0.8/hook", "slack_url_private_host", "private, loopback"),
        ("https://169.254.169.254/latest", "slack_url_private_host", "private, loopback"),
        ("https://[::1]/hook", "slack_url_private_host", "private, loopback"),
    ],
)
def test_each_invalid_url_is_refused_by_field_with_a_code(guarded, url, code, words):
    account = _account()
    owner = make_user(account, "owner")
    with pytest.raises(ValidationError) as caught:
        slack_url_set(account=account, url=url, user=owner)
    error = caught.value.error_dict["slack_webhook_url"][0]
    assert error.code == code
    assert "Slack webhook URL" in error.message and words in error.message
    account.refresh_from_db()
    assert account.slack_webhook_url == ""


@pytest.mark.django_db
def test_500_characters_is_accepted(guarded):
    account = _account()
    url = "https://hooks.slack.com/" + "x" * 476  # 24 + 476 = 500
    assert len(url) == 500
    slack_url_set(account=account, url=url, user=make_user(account, "o"))
    account.refresh_from_db()
    assert account.slack_webhook_url == url


@pytest.mark.django_db
def test_http_and_private_hosts_are_accepted_when_the_setting_allows(settings):
    settings.ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = True
    account = _account()
    slack_url_set(account=account, url="http://127.0.0.1:9000/hook", user=make_user(account, "o"))
    assert Account.objects.get(pk=account.pk).slack_webhook_url == "http://127.0.0.1:9000/hook"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Membership.Role.OWNER, True),
        (Membership.Role.BILLING, True),
        (Membership.Role.MEMBER, False),
    ],
)
def test_only_owners_and_billing_members_set_test_and_remove(guarded, role, allowed):
    account = _account()
    user = make_user(account, f"u-{role}", role=role)
    if not allowed:
        with pytest.raises(PermissionDenied):
            slack_url_set(account=account, url=HOOK, user=user)
        Account.objects.filter(pk=account.pk).update(slack_webhook_url=HOOK)
        account.refresh_from_db()
        with pytest.raises(PermissionDenied):
            slack_url_remove(account=account, user=user)
        with pytest.raises(PermissionDenied):
            slack_test_send(account=account, user=user)
        assert Account.objects.get(pk=account.pk).slack_webhook_url == HOOK
        return
    slack_url_set(account=account, url=HOOK, user=user)
    assert Account.objects.get(pk=account.pk).slack_webhook_url == HOOK
    slack_url_remove(account=account, user=user)
    assert Account.objects.get(pk=account.pk).slack_webhook_url == ""


@pytest.mark.django_db
def test_an_owner_of_another_account_cannot_set_this_one(guarded):
    mine, theirs = _account("Mine"), _account("Theirs")
    stranger = make_user(theirs, "stranger")
    with pytest.raises(PermissionDenied):
        slack_url_set(account=mine, url=HOOK, user=stranger)
    assert Account.objects.get(pk=mine.pk).slack_webhook_url == ""


def test_the_masked_url_hides_the_secret_path():
    assert slack_url_masked(HOOK) == "https://hooks.slack.com/…XXXX"
    assert slack_url_masked("") == ""
    assert json.dumps(slack_url_masked(HOOK)).count("T000") == 0
