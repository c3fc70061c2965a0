"""The read API (issue 18, acceptance 4): ``docs/openapi.yaml`` validates, every
documented endpoint's answers (200 and each error) validate against the response schema
in it, key scopes (a read key reads but cannot ingest; an ingest key does both; a revoked
key does neither), any customer of the operator is visible and an unknown one is 404.
Amounts are worked by hand from the demo catalog's Pro plan: $99 base, 10,000 API calls
included then 0.2¢ a call, $10 a seat (last value)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import time_machine
import yaml
from django.core.management import call_command
from django.test import Client
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from billing.mirror.customers import customer_id_for_account
from billing.mirror.subscriptions import subscription_state_for_account
from billing.services.accounts import account_create, account_ensure_stripe_customer
from billing.services.stripe_sync import stripe_sync_everything
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from usage.models import AlertDelivery, AlertRule, IngestKey, UsageEvent
from usage.models_budgets import Budget
from usage.selectors.summaries import period_summary
from usage.services.ingest import usage_events_ingest
from usage.services.keys import ingest_key_create, ingest_key_revoke
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
SPEC_URI = "urn:meterdesk:openapi"
REGISTRY = Registry().with_resource(SPEC_URI, Resource(SPEC, specification=DRAFT202012))

USAGE = "/api/v1/customers/{customer}/usage"
INVOICES = "/api/v1/customers/{customer}/invoices"
ALERTS = "/api/v1/customers/{customer}/alerts"
EVENTS = "/api/v1/usage/events"
READ_PATHS = (USAGE, INVOICES, ALERTS)

START = datetime(2026, 9, 1, tzinfo=UTC)
SEP_USAGE = datetime(2026, 9, 5, 12, tzinfo=UTC)
RENEWED = datetime(2026, 10, 1, 1, 1, tzinfo=UTC)  # past the period end and the draft hour
OCT_NOW = datetime(2026, 10, 11, tzinfo=UTC)  # 10 days into Oct 1 - Nov 1


# -- the schema ------------------------------------------------------------------------
def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def assert_documented(response, path: str, method: str = "get") -> dict:
    """The answer's status is documented for the endpoint and its body validates."""
    documented = SPEC["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (path, response.status_code)
    assert response["Content-Type"] == "application/json"
    body = response.json()
    # The schema by its place in the file, so its ``#/components/...`` refs resolve there.
    validator = Draft202012Validator(
        {"$ref": _ref_to(path, method, response.status_code)},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return body


def _ref_to(path: str, method: str, status: int) -> str:
    """A URI of the answer's schema inside the spec resource."""
    response = SPEC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        base = response["$ref"]  # "#/components/responses/X"
    else:
        base = "#" + _pointer("", "paths", path, method, "responses", str(status))
    return SPEC_URI + base + "/content/application~1json/schema"


def test_the_openapi_file_validates_and_documents_the_read_endpoints():
    validate_spec(SPEC)  # OpenAPI 3.1, raises on any error
    assert SPEC["openapi"].startswith("3.1")
    for path in READ_PATHS:
        statuses = set(SPEC["paths"][path]["get"]["responses"])
        assert {"200", "401", "404"} <= statuses
    assert "403" in SPEC["paths"][EVENTS]["post"]["responses"]  # key_cannot_ingest


def test_the_validator_catches_a_wrong_answer():
    """The check the other tests rely on fails for a body off the schema."""

    class Fake:
        status_code = 200

        def __getitem__(self, name):
            return "application/json"

        def json(self):
            return {"customer": "cus_x", "data": [{"id": 1}], "has_more": False,
                    "limit": 10, "offset": 0, "next_offset": None}  # fmt: skip

    with pytest.raises(AssertionError):
        assert_documented(Fake(), INVOICES)


# -- keys and clients ------------------------------------------------------------------
@pytest.fixture
def read_key(db) -> str:
    return ingest_key_create(name="read only", scope=IngestKey.Scope.READ)[1]


@pytest.fixture
def ingest_key(db) -> str:
    return ingest_key_create(name="backend")[1]


def get(path: str, key: str | None, customer: str, *, quoted: bool = False, **params):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = path.format(customer=customer if quoted else quote(customer, safe=""))
    return Client().get(url, params, headers=headers)


def post_events(key: str | None, body, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = kwargs.pop("raw", None) or json.dumps(body)
    content_type = kwargs.pop("content_type", "application/json")
    return Client().post(EVENTS, data=data, content_type=content_type, headers=headers)


def _error(response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("field")


# -- every documented answer -----------------------------------------------------------
def test_every_documented_answer_validates(make_customers, read_key, ingest_key):
    """Each documented status of each endpoint is produced here and validated."""
    seen: set[tuple[str, str, str]] = set()

    def check(response, path, method="get"):
        assert_documented(response, path, method)
        seen.add((path, method, str(response.status_code)))
        return response

    [customer] = make_customers(1)  # an account with no subscription yet
    for path in READ_PATHS:
        body = check(get(path, read_key, customer), path).json()
        assert body["customer"] == customer
        response = check(get(path, None, customer), path)
        assert _error(response) == (401, "invalid_key", None)
        assert response["WWW-Authenticate"] == 'Bearer realm="meterdesk-usage"'
        response = check(get(path, read_key, "cus_nobody"), path)
        assert _error(response) == (404, "customer_not_found", "customer")
    for path in (INVOICES, ALERTS):
        response = check(get(path, read_key, customer, limit="0"), path)
        assert _error(response) == (400, "invalid_parameter", "limit")
    # No subscription: the same keys, with nulls and no meters; the account's currency.
    usage = get(USAGE, read_key, customer).json()
    assert (usage["period_start"], usage["subscription"], usage["meters"]) == (None, None, [])
    assert (usage["currency"], usage["base_fee"], usage["estimated_invoice"]) == ("usd", 0, None)

    event = {"event_name": "api_calls", "customer": customer, "identifier": "doc-1"}
    assert check(post_events(ingest_key, event), EVENTS, "post").status_code == 202
    assert check(post_events(read_key, event), EVENTS, "post").status_code == 403
    assert check(post_events(None, event), EVENTS, "post").status_code == 401
    assert check(post_events(ingest_key, None, raw="[1]"), EVENTS, "post").status_code == 400
    too_many = {"events": [event] * 1001}
    assert check(post_events(ingest_key, too_many), EVENTS, "post").status_code == 413
    wrong_type = post_events(ingest_key, None, raw="x=1", content_type="text/plain")
    assert check(wrong_type, EVENTS, "post").status_code == 415

    documented = {
        (path, method, status)
        for path in (*READ_PATHS, EVENTS)
        for method, operation in SPEC["paths"][path].items()
        for status in operation["responses"]
    }
    assert seen == documented


# -- scopes ----------------------------------------------------------------------------
def test_a_read_key_reads_but_cannot_ingest(customer, read_key):
    assert get(USAGE, read_key, customer).status_code == 200
    event = {"event_name": "api_calls", "customer": customer, "identifier": "r-1", "value": 5}
    response = post_events(read_key, event)
    assert response.status_code == 403
    assert response.json() == {
        "error": {"code": "key_cannot_ingest", "message": "this key is read-only: it cannot ingest"}
    }
    # Refused before the body is looked at: not even a wrong content type gets further.
    assert post_events(read_key, None, raw="x", content_type="text/plain").status_code == 403
    assert UsageEvent.objects.count() == 0


def test_an_ingest_key_ingests_and_reads(customer, ingest_key, subscribe):
    subscribe(customer, "starter")
    events = {"events": [
        {"event_name": "api_calls", "customer": customer, "identifier": f"i-{i}"}
        for i in range(3)
    ]}  # fmt: skip
    assert post_events(ingest_key, events).json()["accepted"] == 3
    body = assert_documented(get(USAGE, ingest_key, customer), USAGE)
    [line] = body["meters"]
    # Starter: 0.1¢ a call; 3 calls = 0.3¢, and a line is rounded once: 0¢.
    assert (line["event_name"], line["usage"], line["cost"]) == ("api_calls", 3, 0)
    assert body["usage_cost"] == 0 and body["base_fee"] == 0  # no licensed price


def test_the_summary_endpoint_takes_a_read_key(customer, read_key):
    response = Client().get(
        "/api/v1/usage/summary",
        {"customer": customer, "event_name": "api_calls"},
        headers={"Authorization": f"Bearer {read_key}"},
    )
    assert response.status_code == 200 and response.json()["total"] == 0


@pytest.mark.parametrize("scope", ["read", "ingest"])
def test_a_revoked_key_is_refused_everywhere(customer, scope):
    key, raw = ingest_key_create(name="old", scope=scope)
    assert get(USAGE, raw, customer).status_code == 200
    ingest_key_revoke(key=key)
    for path in READ_PATHS:
        assert _error(get(path, raw, customer)) == (401, "invalid_key", None)
    event = {"event_name": "api_calls", "customer": customer}
    assert _error(post_events(raw, event)) == (401, "unauthorized", None)


def test_a_key_sees_every_customer_of_the_operator_and_404_for_others(make_customers, read_key):
    first, second = make_customers(2)
    for customer in (first, second):
        for path in READ_PATHS:
            response = get(path, read_key, customer)
            assert (response.status_code, response.json()["customer"]) == (200, customer)
    # Unknown, a prefix of a real one, too long, NUL, bytes that are not UTF-8 (a lone
    # surrogate's encoding): 404, no 500.
    for customer in ("cus_unknown", first[:-1], "c" * 300, "cus_%00", "cus_%ED%A0%80%FF"):
        for path in READ_PATHS:
            assert _error(get(path, read_key, customer, quoted=True)) == (
                404, "customer_not_found", "customer",
            )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1e2"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "10001"}, "offset"),
        ({"offset": "9" * 5000}, "offset"),
        ({"limit": "5", "offset": "x"}, "offset"),
    ],
)
def test_bad_paging_parameters_are_400_naming_the_parameter(customer, read_key, params, field):
    for path in (INVOICES, ALERTS):
        response = get(path, read_key, customer, **params)
        assert _error(response) == (400, "invalid_parameter", field)
        assert response.json()["error"]["message"].startswith(f"{field}: must be a whole number")


def test_only_get(customer, read_key):
    response = Client().post(
        USAGE.format(customer=customer), headers={"Authorization": f"Bearer {read_key}"}
    )
    assert response.status_code == 405


# -- key management --------------------------------------------------------------------
def test_the_command_makes_a_read_only_key(capsys, customer):
    call_command("create_ingest_key", "reporting", "--scope", "read")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    key = IngestKey.objects.get(name="reporting")
    assert key.scope == "read" and raw.startswith(key.prefix)
    assert get(USAGE, raw, customer).status_code == 200
    assert post_events(raw, {"event_name": "api_calls", "customer": customer}).status_code == 403


def test_staff_make_a_read_only_key_in_admin(admin_client, customer):
    response = admin_client.post(
        "/admin/usage/ingestkey/add/", {"name": "dashboards", "scope": "read"}, follow=True
    )
    [message] = [str(m) for m in response.context["messages"] if "Copy it now" in str(m)]
    assert message.startswith("Read-only API key created.")
    raw = message.rsplit(" ", 1)[-1]
    key = IngestKey.objects.get(name="dashboards")
    assert key.scope == "read"
    assert get(USAGE, raw, customer).status_code == 200
    assert post_events(raw, {"event_name": "api_calls", "customer": customer}).status_code == 403
    # The scope is fixed once made: the change form shows it read-only.
    page = admin_client.get(f"/admin/usage/ingestkey/{key.pk}/change/").content.decode()
    assert 'name="scope"' not in page and "Read only" in page
    admin_client.post(
        f"/admin/usage/ingestkey/{key.pk}/change/", {"name": "renamed", "scope": "ingest"}
    )
    key.refresh_from_db()
    assert (key.name, key.scope) == ("renamed", "read")


# -- one customer over two periods, worked by hand -------------------------------------
@pytest.fixture
def acme(stripe_client, demo_catalog):
    """Acme on Pro from Sep 1 (a test clock): 10,500 calls and 3 seats in September, the
    renewal invoiced and paid on Oct 1; then 12,000 calls and 4 seats by Oct 11."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(START.timestamp())}
    )
    account = account_create(name="Acme", billing_email="ap@acme.example")
    account_ensure_stripe_customer(
        account=account, payment_method="pm_card_visa", test_clock=clock.id
    )
    subscription_create(account=account, plan=demo_catalog["pro"])
    customer = customer_id_for_account(account=account)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=SEP_USAGE)
    assert not stripe_sync_everything().errors
    _ingest(customer, "sep", START, SEP_USAGE, calls=10_500, seats=(2, 3))
    with time_machine.travel(SEP_USAGE, tick=False):
        usage_report_pass(now=SEP_USAGE, flush=True)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=RENEWED)
    assert not stripe_sync_everything().errors
    _ingest(customer, "oct", datetime(2026, 10, 1, tzinfo=UTC), OCT_NOW, calls=12_000, seats=(4,))
    return account, customer


def _ingest(customer, prefix, start, now, *, calls: int, seats) -> None:
    span = int((now - start).total_seconds()) - 60
    events = [
        {"event_name": "api_calls", "customer": customer, "identifier": f"{prefix}-c{i}",
         "timestamp": int(start.timestamp()) + 60 + i * span // calls}
        for i in range(calls)
    ] + [
        {"event_name": "seats", "customer": customer, "identifier": f"{prefix}-s{i}",
         "value": value, "timestamp": int(start.timestamp()) + 120 + i}
        for i, value in enumerate(seats)
    ]  # fmt: skip
    with time_machine.travel(now, tick=False):
        for i in range(0, len(events), 1000):
            result = usage_events_ingest(events=events[i : i + 1000], now=now)
            assert not result.rejected, result.rejected[:3]


def test_usage_of_the_current_period_worked_by_hand(acme, read_key):
    account, customer = acme
    Budget.objects.create(
        account=account, kind="units", meter_id=_meter_id("api_calls"), limit=20_000,
        warn_levels=[50, 80, 100], hard_cap=True,
    )  # fmt: skip
    Budget.objects.create(account=account, kind="spend", currency="usd", limit=15_000)
    with time_machine.travel(OCT_NOW, tick=False):
        body = assert_documented(get(USAGE, read_key, customer), USAGE)
        summary = period_summary(
            account=account, state=subscription_state_for_account(account=account), now=OCT_NOW
        )
    assert body["period_start"] == "2026-10-01T00:00:00Z"
    assert body["period_end"] == "2026-11-01T00:00:00Z"
    assert (body["currency"], body["account_status"], body["as_of"]) == (
        "usd", "active", "2026-10-11T00:00:00Z",
    )  # fmt: skip
    assert body["subscription"]["status"] == "active"
    meters = {m["event_name"]: m for m in body["meters"]}
    calls, seats = meters["api_calls"], meters["seats"]
    # API calls: 12,000 of 10,000 included = 120.0%; (12,000 - 10,000) × 0.2¢ = 400¢.
    assert (calls["usage"], calls["allowance"], calls["share_used"], calls["cost"]) == (
        12_000, 10_000, "120.0", 400,
    )  # fmt: skip
    # Seats: the last value, 4 (not 4 + earlier); 4 × 1,000¢ = 4,000¢; no allowance.
    assert (seats["usage"], seats["allowance"], seats["share_used"], seats["cost"]) == (
        4, 0, None, 4_000,
    )  # fmt: skip
    # Base fee 9,900¢; usage so far 400 + 4,000 = 4,400¢.
    assert (body["base_fee"], body["usage_cost"]) == (9_900, 4_400)
    # Units budget: 12,000 of 20,000 = 60% (50 reached, not 80); hard cap not reached.
    assert calls["budget"] == {
        "kind": "units", "limit": 20_000, "used": 12_000, "currency": None, "percent": 60,
        "warn_levels": [50, 80, 100], "levels_reached": [50], "hard_cap": True,
        "cap_reached": False, "resets_at": "2026-11-01T00:00:00Z",
    }  # fmt: skip
    assert seats["budget"] is None
    # Spend budget: the bill so far 9,900 + 400 + 4,000 = 14,300¢ of 15,000¢;
    # 14,300 × 100 // 15,000 = 95%; levels 50 and 80 reached (default [50, 80, 100]).
    spend = body["spend_budget"]
    assert (spend["used"], spend["limit"], spend["currency"], spend["percent"]) == (
        14_300, 15_000, "usd", 95,
    )  # fmt: skip
    assert (spend["levels_reached"], spend["cap_reached"]) == ([50, 80], False)
    # The projection is the dashboard's (same engine, same instant) ...
    lines = {line.meter.event_name: line for line in summary.lines}
    for name, meter in meters.items():
        projection = lines[name].projection
        assert meter["projection"]["usage"] == {
            "low": projection.low, "expected": projection.projected, "high": projection.high,
        }  # fmt: skip
        low, expected, high = lines[name].projected_cost
        assert meter["projection"]["cost"] == {"low": low, "expected": expected, "high": high}
    # ... and priced as the plan says: never below the usage so far; a call over the
    # allowance costs 0.2¢ (one line rounded once, half up); seats stay at 4 × 1,000¢.
    usage_range = calls["projection"]["usage"]
    assert 12_000 <= usage_range["low"] <= usage_range["expected"] <= usage_range["high"]
    for point in ("low", "expected", "high"):
        over = usage_range[point] - 10_000
        assert calls["projection"]["cost"][point] == (over * 2 + 5) // 10  # 0.2¢ = 2/10 ¢
    assert seats["projection"] == {
        "usage": {"low": 4, "expected": 4, "high": 4},
        "cost": {"low": 4_000, "expected": 4_000, "high": 4_000},
        "method": "last_value",
    }
    # Estimated invoice = base fee + projected usage cost (4,000¢ seats + the calls').
    for point in ("low", "expected", "high"):
        usage_cost = calls["projection"]["cost"][point] + 4_000
        assert body["projected_usage_cost"][point] == usage_cost
        assert body["estimated_invoice"][point] == 9_900 + usage_cost


def _meter_id(event_name: str) -> int:
    from billing.models import Meter

    return Meter.objects.get(event_name=event_name).pk


def test_invoices_paginated_worked_by_hand(acme, read_key):
    _, customer = acme
    body = assert_documented(get(INVOICES, read_key, customer), INVOICES)
    assert (body["has_more"], body["next_offset"], body["limit"]) == (False, None, 10)
    renewal, first = body["data"]
    # The renewal on Oct 1 bills September's usage in arrears and October's base fee in
    # advance: (10,500 - 10,000) × 0.2¢ = 100¢; 3 seats × 1,000¢ = 3,000¢; base 9,900¢.
    # 100 + 3,000 + 9,900 = 13,000¢ = $130.00, paid by the card on file.
    assert (renewal["total"], renewal["amount_due"], renewal["amount_remaining"]) == (
        13_000, 13_000, 0,
    )  # fmt: skip
    assert (renewal["currency"], renewal["status"]) == ("usd", "paid")
    assert (renewal["period_start"], renewal["period_end"]) == (
        "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z",
    )  # fmt: skip
    assert renewal["hosted_invoice_url"].endswith("/invoices/" + renewal["id"])
    # The first invoice, Sep 1: the base fee in advance only (metered prices bill in
    # arrears), 9,900¢ = $99.00.
    assert (first["total"], first["status"], first["currency"]) == (9_900, "paid", "usd")
    assert first["created"] < renewal["created"]

    page1 = assert_documented(get(INVOICES, read_key, customer, limit="1"), INVOICES)
    assert ([i["id"] for i in page1["data"]], page1["has_more"], page1["next_offset"]) == (
        [renewal["id"]], True, 1,
    )  # fmt: skip
    page2 = assert_documented(get(INVOICES, read_key, customer, limit="1", offset="1"), INVOICES)
    assert ([i["id"] for i in page2["data"]], page2["has_more"], page2["next_offset"]) == (
        [first["id"]], False, None,
    )  # fmt: skip
    beyond = assert_documented(get(INVOICES, read_key, customer, offset="2"), INVOICES)
    assert (beyond["data"], beyond["has_more"]) == ([], False)


def test_alerts_this_and_earlier_periods_paginated(acme, read_key, other_account):
    account, customer = acme
    sep = (START, datetime(2026, 10, 1, tzinfo=UTC))
    oct_ = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    rule = AlertRule.objects.create(account=account, kind="spend", amount=12_000, currency="usd")
    budget = Budget.objects.create(
        account=account, kind="units", meter_id=_meter_id("api_calls"), limit=20_000
    )

    def delivery(who, period, sent_at, **fields):
        return AlertDelivery.objects.create(
            account=who, period_start=period[0], period_end=period[1], sent_at=sent_at,
            recipients="ap@acme.example", **fields,
        )  # fmt: skip

    # September: spend reached 13,000¢ = 9,900 base + 100 calls + 3,000 seats, over 12,000¢.
    spend = delivery(account, sep, datetime(2026, 9, 28, 9, tzinfo=UTC), rule=rule,
                     summary="Spend reached $130.00", observed=13_000,
                     threshold=12_000)  # fmt: skip
    # October: half of the 20,000-call budget = 10,000 calls (level 50).
    half = delivery(account, oct_, datetime(2026, 10, 9, 7, tzinfo=UTC), budget=budget,
                    level=50, summary="API calls: 50% of budget", observed=10_000,
                    threshold=10_000)  # fmt: skip
    # Not listed: a claim whose e-mail has not gone out, another account's alert.
    delivery(account, oct_, None, budget=budget, level=80, summary="pending",
             observed=16_000, threshold=16_000)  # fmt: skip
    delivery(other_account, oct_, datetime(2026, 10, 10, tzinfo=UTC), summary="Globex",
             observed=1, threshold=1)  # fmt: skip

    with time_machine.travel(OCT_NOW, tick=False):
        body = assert_documented(get(ALERTS, read_key, customer), ALERTS)
        page2 = assert_documented(get(ALERTS, read_key, customer, limit="1", offset="1"), ALERTS)
    assert [a["id"] for a in body["data"]] == [half.pk, spend.pk]  # newest first
    assert body["data"][0] == {
        "id": half.pk, "sent_at": "2026-10-09T07:00:00Z", "summary": "API calls: 50% of budget",
        "kind": "budget_units", "event_name": "api_calls", "level": 50, "observed": 10_000,
        "threshold": 10_000, "currency": None, "period_start": "2026-10-01T00:00:00Z",
        "period_end": "2026-11-01T00:00:00Z", "current_period": True, "resolved_at": None,
    }  # fmt: skip
    earlier = body["data"][1]
    assert (earlier["kind"], earlier["currency"], earlier["observed"], earlier["threshold"]) == (
        "spend", "usd", 13_000, 12_000,
    )  # fmt: skip
    assert (earlier["current_period"], earlier["event_name"], earlier["level"]) == (
        False, None, 100,
    )  # fmt: skip
    assert ([a["id"] for a in page2["data"]], page2["has_more"]) == ([spend.pk], False)
    first = get(ALERTS, read_key, customer, limit="1").json()
    assert (first["has_more"], first["next_offset"]) == (True, 1)


def test_each_answer_costs_a_bounded_number_of_queries(
    pro_account, read_key, django_assert_max_num_queries
):
    """The key, the account, then the dashboard's engine (usage: subscription state,
    rollups, the partial edge hours' rollup rows and adjustments, projection inputs,
    budgets), or one page of rows; however many events."""
    customer = pro_account.djstripe_customers.get().id
    Budget.objects.create(account=pro_account, kind="spend", currency="usd", limit=50_000)
    for path, most in ((USAGE, 16), (INVOICES, 5), (ALERTS, 3)):
        get(path, read_key, customer)  # the key's last use is recorded once a minute
        with django_assert_max_num_queries(most):
            assert get(path, read_key, customer).status_code == 200
