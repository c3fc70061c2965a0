"""The embeddable usage widget (dashboards.embed_views, dashboards.embed_tokens).

Two accounts on Starter (demo catalog), subscribed on one test clock at Mar 1 00:00 UTC
(period Mar 1 - Apr 1), Django's clock pinned at Mar 5 00:00 UTC:
- Kuwait (kwd): 3,985 API calls on Mar 2 x 0.31 fils = 1,235.35 fils -> 1,235 fils
  = KWD 1.235 (one rounding, half up, to the fils).
- Globex (usd): 4,321 API calls on Mar 2 x 0.1¢ = 432.1¢ -> 432¢ = $4.32.
"""

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.core import signing
from django.urls import reverse

from billing.models import Account
from billing.services.subscriptions import subscription_create
from usage.models import IngestKey
from usage.services.ingest import usage_events_ingest
from usage.services.keys import ingest_key_create, ingest_key_revoke

pytestmark = pytest.mark.django_db

MAR_1 = datetime(2026, 3, 1, tzinfo=UTC)
MAR_2 = datetime(2026, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 3, 5, tzinfo=UTC)
MINT = "/api/v1/embed_tokens"


def _use(account: Account, count: int, *, prefix: str) -> None:
    customer = account.djstripe_customers.get().id
    events = [
        {
            "event_name": "api_calls",
            "customer": customer,
            "timestamp": int(MAR_2.timestamp()) + i,
            "identifier": f"{prefix}-{i}",
        }
        for i in range(count)
    ]
    for i in range(0, count, 1000):
        result = usage_events_ingest(events=events[i : i + 1000], now=NOW)
        assert not result.rejected, result.rejected[:3]


@pytest.fixture
def accounts(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(MAR_1.timestamp())}
    )
    kuwait = Account.objects.create(
        name="Kuwait Traders", billing_email="billing@kw.example", currency="kwd"
    )
    globex = Account.objects.create(name="Globex", billing_email="billing@globex.example")
    for account in (kuwait, globex):
        subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    _use(kuwait, 3_985, prefix="kw")
    _use(globex, 4_321, prefix="gx")
    return kuwait, globex


@pytest.fixture
def api_key():
    _, raw = ingest_key_create(name="operator backend")
    return raw


def _customer(account: Account) -> str:
    return account.djstripe_customers.get().id


def _mint(client, key: str | None, body, **headers):
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(MINT, data=data, content_type="application/json", headers=headers)


def _token(client, key, account, **extra) -> str:
    response = _mint(client, key, {"customer": _customer(account), **extra})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _widget(client, token: str, **headers):
    return client.get(reverse("embed_usage"), {"token": token}, headers=headers)


def _testid(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)
    assert match, testid
    return " ".join(match.group(1).split())


# --- minting -------------------------------------------------------------------------


def test_minting_answers_a_token_its_expiry_and_the_widget_url(client, accounts, api_key, settings):
    kuwait, _ = accounts
    settings.SITE_URL = "https://meterdesk.example"
    with time_machine.travel(NOW, tick=False):
        response = _mint(client, api_key, {"customer": _customer(kuwait)})
    assert response.status_code == 200
    body = response.json()
    assert body["customer"] == _customer(kuwait)
    # The default life: 900 s from Mar 5 00:00:00 -> 00:15:00.
    assert body["expires_at"] == "2026-03-05T00:15:00Z"
    url = urlsplit(body["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "meterdesk.example", "/embed/usage")
    assert parse_qs(url.query) == {"token": [body["token"]]}
    # Signed, not encrypted: the account and the key's ids, and the expiry.
    payload = signing.TimestampSigner(salt="meterdesk.dashboards.embed_usage").unsign_object(
        body["token"]
    )
    key = IngestKey.objects.get()
    assert payload == {"a": kuwait.pk, "k": key.pk, "e": int(NOW.timestamp()) + 900}


def test_a_read_only_key_mints_too_and_ttl_is_capped_by_the_setting(
    client, accounts, api_key, settings
):
    kuwait, _ = accounts
    key, read_key = ingest_key_create(name="read only")
    IngestKey.objects.filter(pk=key.pk).update(scope=IngestKey.Scope.READ)
    with time_machine.travel(NOW, tick=False):
        longest = _mint(client, read_key, {"customer": _customer(kuwait), "ttl_seconds": 3600})
        too_long = _mint(client, read_key, {"customer": _customer(kuwait), "ttl_seconds": 3601})
        settings.EMBED_TOKEN_MAX_TTL_SECONDS = 600
        capped = _mint(client, api_key, {"customer": _customer(kuwait), "ttl_seconds": 601})
        ten_minutes = _mint(client, api_key, {"customer": _customer(kuwait), "ttl_seconds": 600})
    # 3,600 s (the default maximum) from 00:00:00 -> 01:00:00.
    assert longest.status_code == 200
    assert longest.json()["expires_at"] == "2026-03-05T01:00:00Z"
    for refused, most in ((too_long, 3600), (capped, 600)):
        assert refused.status_code == 400
        assert refused.json()["error"] == {
            "code": "invalid_parameter",
            "message": f"ttl_seconds: must be a whole number of seconds from 1 to {most}",
            "field": "ttl_seconds",
        }
    assert ten_minutes.json()["expires_at"] == "2026-03-05T00:10:00Z"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({}, 400, "missing_parameter", "customer"),
        ({"customer": ""}, 400, "missing_parameter", "customer"),
        ({"customer": 42}, 400, "invalid_parameter", "customer"),
        ({"customer": "cus_nobody"}, 404, "customer_not_found", "customer"),
        ({"customer": "cus_\x00"}, 404, "customer_not_found", "customer"),
        ({"customer": "KUWAIT", "ttl_seconds": 0}, 400, "invalid_parameter", "ttl_seconds"),
        ({"customer": "KUWAIT", "ttl_seconds": -5}, 400, "invalid_parameter", "ttl_seconds"),
        ({"customer": "KUWAIT", "ttl_seconds": "900"}, 400, "invalid_parameter", "ttl_seconds"),
        ({"customer": "KUWAIT", "ttl_seconds": 90.5}, 400, "invalid_parameter", "ttl_seconds"),
        ({"customer": "KUWAIT", "ttl_seconds": True}, 400, "invalid_parameter", "ttl_seconds"),
        ({"customer": "KUWAIT", "ttl_seconds": None}, 400, "invalid_parameter", "ttl_seconds"),
        ({"customer": "KUWAIT", "account": 1}, 400, "unknown_parameter", "account"),
    ],
)
def test_minting_errors_name_the_field(client, accounts, api_key, body, status, code, field):
    kuwait, _ = accounts
    if body.get("customer") == "KUWAIT":
        body = {**body, "customer": _customer(kuwait)}
    response = _mint(client, api_key, body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"].startswith(f"{field}: ")


def test_minting_refuses_bodies_that_are_not_a_json_object(client, accounts, api_key):
    for raw in ("{not json", "[]", '"cus_x"'):
        response = _mint(client, api_key, raw)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"
    form = client.post(MINT, {"customer": "x"}, headers={"Authorization": f"Bearer {api_key}"})
    assert form.status_code == 415


def test_minting_needs_a_valid_active_key(client, accounts, api_key):
    kuwait, _ = accounts
    body = {"customer": _customer(kuwait)}
    key = IngestKey.objects.get()
    answers = [
        _mint(client, None, body),
        _mint(client, "mdk_wrong", body),
        _mint(client, None, body, Authorization=f"Basic {api_key}"),
    ]
    ingest_key_revoke(key=key)
    answers.append(_mint(client, api_key, body))
    for response in answers:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_key"
        assert response["WWW-Authenticate"] == 'Bearer realm="meterdesk"'
    assert client.get(MINT, headers={"Authorization": f"Bearer {api_key}"}).status_code == 405


# --- the widget ------------------------------------------------------------------------


def test_the_widget_shows_that_customer_only_in_its_currency(client, accounts, api_key):
    kuwait, globex = accounts
    with time_machine.travel(NOW, tick=False):
        kw_token = _token(client, api_key, kuwait)
        gx_token = _token(client, api_key, globex)
        kw = _widget(client, kw_token)
        gx = _widget(client, gx_token)
        # Another account's id on the query changes nothing: the token decides.
        probe = client.get(reverse("embed_usage"), {"token": kw_token, "account": globex.pk})
    assert kw.status_code == gx.status_code == probe.status_code == 200
    html, other = kw.content.decode(), gx.content.decode()
    assert probe.content.decode().count("Kuwait Traders") == html.count("Kuwait Traders")
    # 3,985 calls x 0.31 fils = 1,235.35 -> 1,235 fils = KWD 1.235 (no base fee on Starter).
    assert _testid(html, "usage-api_calls") == "3,985"
    assert _testid(html, "cost-so-far") == "KWD 1.235"
    assert _testid(html, "cost-api_calls") == "KWD 1.235"
    assert _testid(html, "base-fee") == "KWD 0.000"
    assert "Kuwait Traders" in html and "Globex" not in html
    assert not re.search(r"\$\d", html)  # nothing in dollars on a dinar account
    # 4,321 calls x 0.1¢ = 432.1¢ -> 432¢ = $4.32.
    assert _testid(other, "usage-api_calls") == "4,321"
    assert _testid(other, "cost-so-far") == "$4.32"
    assert "Globex" in other and "Kuwait" not in other and "KWD" not in other
    # Read-only and standalone: no forms, no links, no navigation, no session.
    for page in (html, other):
        assert "<form" not in page and "<a " not in page and "<nav" not in page
        assert "/dashboard/" not in page and "csrf" not in page.lower()
    assert not kw.cookies and "Cookie" not in kw.get("Vary", "")
    # The chart and the refresh carry the same token.
    assert f"/embed/usage/chart/api_calls.json?token={kw_token.replace(':', '%3A')}" in html
    assert f'hx-get="/embed/usage?token={kw_token.replace(":", "%3A")}"' in html


def test_the_widget_refreshes_its_numbers_with_the_same_token(client, accounts, api_key):
    kuwait, _ = accounts
    with time_machine.travel(NOW, tick=False):
        token = _token(client, api_key, kuwait)
        _use(kuwait, 15, prefix="more")
        poll = _widget(client, token, **{"HX-Request": "true"})
    # The #summary region alone, polling on: 3,985 + 15 = 4,000 calls x 0.31 fils
    # = 1,240 fils = KWD 1.240.
    assert poll.status_code == 200
    html = poll.content.decode()
    assert html.lstrip().startswith('<div id="summary"') and "<html" not in html
    assert 'hx-trigger="every 30s' in html
    assert _testid(html, "usage-api_calls") == "4,000"
    assert _testid(html, "cost-so-far") == "KWD 1.240"


def test_the_chart_json_is_reachable_with_the_token_only(client, accounts, api_key):
    kuwait, globex = accounts
    with time_machine.travel(NOW, tick=False):
        kw_token = _token(client, api_key, kuwait)
        gx_token = _token(client, api_key, globex)
        url = reverse("embed_usage_chart", args=["api_calls"])
        kw = client.get(url, {"token": kw_token})
        gx = client.get(url, {"token": gx_token, "granularity": "hour"})
        no_meter = client.get(reverse("embed_usage_chart", args=["seats"]), {"token": kw_token})
        bad = client.get(url, {"token": kw_token, "granularity": "week"})
        missing = client.get(url)
        tampered = client.get(url, {"token": kw_token[:-1] + ("A" if kw_token[-1] != "A" else "B")})
    assert kw.status_code == gx.status_code == 200
    kw_data, gx_data = kw.json(), gx.json()
    # All on Mar 2: daily buckets Mar 1, 2, 3, 4 (up to now, Mar 5 00:00).
    assert kw_data["total"] == 3_985 and kw_data["usage"][:4] == [0, 3_985, 0, 0]
    assert kw_data["period"]["start"] == "2026-03-01T00:00:00+00:00"
    # Globex per hour: Mar 2 00:00 is the 25th hour bucket (index 24), all 4,321 calls
    # within 4,321 s of it (under 2 hours: 3,600 in 00:00, 721 in 01:00).
    assert gx_data["total"] == 4_321 and gx_data["usage"][24:26] == [3_600, 721]
    assert no_meter.status_code == 404 and no_meter.json()["error"]["code"] == "meter_not_found"
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "granularity"
    assert missing.status_code == tampered.status_code == 403
    assert tampered.json()["error"]["code"] == "token_invalid"


def test_an_expired_token_is_refused_with_a_403_page(client, accounts, api_key):
    kuwait, _ = accounts
    with time_machine.travel(NOW, tick=False):
        token = _token(client, api_key, kuwait, ttl_seconds=900)
    with time_machine.travel(NOW + timedelta(seconds=899), tick=False):
        last_second = _widget(client, token)
    with time_machine.travel(NOW + timedelta(seconds=900), tick=False):
        expired = _widget(client, token)
        chart = client.get(reverse("embed_usage_chart", args=["api_calls"]), {"token": token})
        # A widget left open: its refresh swaps the notice in and stops polling (286).
        poll = _widget(client, token, **{"HX-Request": "true"})
    assert last_second.status_code == 200
    assert expired.status_code == 403
    page = expired.content.decode()
    assert 'data-reason="expired"' in page
    assert "This usage view has expired." in page and "Kuwait" not in page
    assert chart.status_code == 403 and chart.json()["error"]["code"] == "token_expired"
    assert poll.status_code == 286
    assert 'id="summary"' in poll.content.decode() and "has expired" in poll.content.decode()
    assert "<html" not in poll.content.decode()


def test_a_token_older_than_the_maximum_life_is_expired_whatever_it_says(
    client, accounts, api_key, settings
):
    kuwait, _ = accounts
    with time_machine.travel(NOW, tick=False):
        token = _token(client, api_key, kuwait, ttl_seconds=3600)
    settings.EMBED_TOKEN_MAX_TTL_SECONDS = 600  # lowered since: max_age of the signature
    with time_machine.travel(NOW + timedelta(seconds=601), tick=False):
        response = _widget(client, token)
    assert response.status_code == 403
    assert 'data-reason="expired"' in response.content.decode()


def test_tampered_foreign_and_revoked_tokens_are_refused(client, accounts, api_key):
    kuwait, globex = accounts
    with time_machine.travel(NOW, tick=False):
        token = _token(client, api_key, kuwait)
        value, _, rest = token.partition(":")
        key = IngestKey.objects.get()
        # The same payload naming Globex, signed with another salt or none.
        forged = [
            signing.TimestampSigner(salt="other").sign_object(
                {"a": globex.pk, "k": key.pk, "e": int(NOW.timestamp()) + 900}
            ),
            signing.dumps({"a": globex.pk, "k": key.pk, "e": int(NOW.timestamp()) + 900}),
            value[:-2] + ("xx" if not value.endswith("xx") else "yy") + ":" + rest,
            token[:-1] + ("A" if token[-1] != "A" else "B"),
            "",
            "x" * 600,
        ]
        answers = [_widget(client, forged_token) for forged_token in forged]
        answers.append(client.get(reverse("embed_usage")))
        ingest_key_revoke(key=key)
        answers.append(_widget(client, token))  # its key revoked: its widgets end
    for response in answers:
        assert response.status_code == 403
        page = response.content.decode()
        assert 'data-reason="invalid"' in page and "is not valid" in page
        assert "Globex" not in page and "Kuwait" not in page


@pytest.mark.parametrize(
    ("origins", "header"),
    [
        ([], "frame-ancestors 'none'"),
        (["https://app.example.com"], "frame-ancestors https://app.example.com"),
        (
            ["https://app.example.com", "http://localhost:3000"],
            "frame-ancestors https://app.example.com http://localhost:3000",
        ),
        # An entry that would end the directive is left out, not written into the policy.
        (["https://a.example; script-src *", " "], "frame-ancestors 'none'"),
    ],
)
def test_the_widget_may_be_framed_by_the_configured_origins_only(
    client, accounts, api_key, settings, origins, header
):
    kuwait, _ = accounts
    settings.EMBED_ALLOWED_ORIGINS = origins
    with time_machine.travel(NOW, tick=False):
        token = _token(client, api_key, kuwait)
        responses = [
            _widget(client, token),
            _widget(client, "tampered"),
            client.get(reverse("embed_usage_chart", args=["api_calls"]), {"token": token}),
        ]
    assert [r.status_code for r in responses] == [200, 403, 200]
    for response in responses:
        assert response["Content-Security-Policy"] == header
        assert "X-Frame-Options" not in response  # exempt: CSP alone decides
        assert response["Cache-Control"] == "private, no-store"


def test_the_portal_itself_still_refuses_every_frame(client, accounts):
    assert client.get(reverse("login"))["X-Frame-Options"] == "DENY"
