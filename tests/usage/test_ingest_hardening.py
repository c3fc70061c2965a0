"""Issue 12: ingestion hardening. Each test names the issue item it covers and fails on
the code before the fix."""

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Sum
from django.utils import timezone

from billing.models import Meter
from usage.event_validation import MAX_HOUR_SUM, MAX_VALUE
from usage.models import UsageEvent, UsageRollup

pytestmark = pytest.mark.django_db


def _hour_ago(hours: int = 3) -> datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)


def _ledger_and_rollups() -> tuple[dict, dict]:
    ledger = UsageEvent.objects.aggregate(s=Sum("value"), n=Count("id"))
    rollups = UsageRollup.objects.aggregate(s=Sum("sum_value"), n=Sum("event_count"))
    return ledger, rollups


# -- item 1: bounded arithmetic -------------------------------------------------------------
def test_an_hour_holds_at_most_max_hour_sum_and_the_rest_of_the_batch_is_stored(api, customer):
    """Item 1 (ingest): an event that would take its (customer, meter, hour) past
    MAX_HOUR_SUM is rejected hour_limit_exceeded; the others are stored."""
    hour = _hour_ago()
    ts = int(hour.timestamp())
    # 20 events of 10**14 in one hour: 9 fit (9 * 10**14 = 9.0e14 <= 9.6e14); the 10th
    # would make 1.0e15 > 9.6e14, and so would every later one. One more event in the
    # next hour is unaffected.
    events = [
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": f"big-{i}",
         "value": 10**14, "timestamp": ts + i}
        for i in range(20)
    ] + [
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": "next-hour",
         "value": 10**14, "timestamp": ts + 3600},
    ]  # fmt: skip
    response = api.post({"events": events})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 10
    assert [r["index"] for r in body["rejected"]] == list(range(9, 20))
    assert {r["code"] for r in body["rejected"]} == {"hour_limit_exceeded"}
    assert body["rejected"][0]["identifier"] == "big-9"
    assert body["rejected"][0]["message"].startswith("value: ")
    assert body["identifiers"][9] is None and body["identifiers"][20] == "next-hour"
    # The hour has room for 9.6e14 - 9.0e14 = 6.0e13 more: exactly that fits, then not 1.
    response = api.post(
        {"events": [
            {"event_name": "data_transfer_gb", "customer": customer, "identifier": "fill",
             "value": 6 * 10**13, "timestamp": ts + 100},
            {"event_name": "data_transfer_gb", "customer": customer, "identifier": "one",
             "value": 1, "timestamp": ts + 101},
        ]}
    )  # fmt: skip
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (1, "hour_limit_exceeded")
    ]
    rollup = UsageRollup.objects.get(hour=hour)
    assert (rollup.sum_value, rollup.event_count) == (MAX_HOUR_SUM, 10)
    # Refused events are not in the ledger: a later retry in another hour is possible.
    assert not UsageEvent.objects.filter(identifier__in=["big-9", "one"]).exists()
    ledger, rollups = _ledger_and_rollups()
    assert ledger == {"s": MAX_HOUR_SUM + 10**14, "n": 11}
    assert rollups == ledger


def test_the_issue_batches_at_max_value_never_answer_500(api, customer):
    """Item 1 (ingest): 11 batches of 930 events in one hour answered 500 from the 10th
    on (the rollup addition overflowed bigint). Now every batch is 202: at 10**12 an
    hour holds 960 events (960 * 10**12 = MAX_HOUR_SUM), so the first batch stores 930,
    the second 30 and refuses 900, the others refuse all; even one event of MAX_VALUE
    (10**14, which always fits an empty hour) is refused in the full hour."""
    ts = int(_hour_ago().timestamp())
    accepted = []
    for batch in range(11):
        events = [
            {"event_name": "data_transfer_gb", "customer": customer,
             "identifier": f"b{batch}-{i}", "value": 10**12, "timestamp": ts + i}
            for i in range(930)
        ]  # fmt: skip
        response = api.post({"events": events})
        assert response.status_code == 202, response.content[:300]
        accepted.append(response.json()["accepted"])
    assert accepted == [930, 30] + [0] * 9
    response = api.post(
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": "max",
         "value": MAX_VALUE, "timestamp": ts + 1}
    )  # fmt: skip
    assert response.json()["rejected"][0]["code"] == "hour_limit_exceeded"
    ledger, rollups = _ledger_and_rollups()
    assert ledger == rollups == {"s": MAX_HOUR_SUM, "n": 960}
    # The next (empty) hour takes it: 9.6e14 = 9.6 events of 10**14.
    response = api.post(
        {"event_name": "data_transfer_gb", "customer": customer, "identifier": "max-next",
         "value": MAX_VALUE, "timestamp": ts + 3600}
    )  # fmt: skip
    assert response.json()["accepted"] == 1


def test_a_400_day_summary_of_full_hours_fits_in_64_bits(api, customer):
    """Item 1 (the cap's arithmetic): the summary API's widest range, 400 days from a
    mid-hour start, is 9,601 whole hours once floored and raised; with every hour at
    MAX_HOUR_SUM the total is 9,601 * 9.6e14 = 9,216,960,000,000,000,000 < 2**63 - 1,
    summed by SQL (SUM over rollups) without overflow, per day and in total."""
    from billing.models import Account

    account = Account.objects.get()
    meter = Meter.objects.get(event_name="data_transfer_gb")
    start = datetime(2024, 1, 1, 0, 30, tzinfo=UTC)
    first = start.replace(minute=0)
    UsageRollup.objects.bulk_create(
        UsageRollup(
            account=account, meter=meter, hour=first + timedelta(hours=h),
            sum_value=MAX_HOUR_SUM, event_count=1, last_value=MAX_HOUR_SUM,
            last_timestamp=first + timedelta(hours=h), last_event_id=h + 1,
        )
        for h in range(9601)
    )  # fmt: skip
    end = start + timedelta(days=400)
    for granularity in ("day", "hour"):
        response = api.summary(
            customer=customer, event_name="data_transfer_gb", granularity=granularity,
            start=start.isoformat(), end=end.isoformat(),
        )  # fmt: skip
        assert response.status_code == 200, response.content[:300]
        assert response.json()["total"] == 9_216_960_000_000_000_000 < 2**63 - 1


# -- item 3: malformed values are rejected per event, never a 500 --------------------------
def test_malformed_values_are_rejected_per_event_and_the_valid_ones_stored(api, customer):
    """Item 3: each of these raised (ValueError, OverflowError, DataError,
    UnicodeEncodeError) and took the batch's valid events with it; now each is rejected
    with a code and its index, and the valid events around them are stored."""
    ts = int(_hour_ago().timestamp())

    def ok(i):
        return {"event_name": "api_calls", "customer": customer, "identifier": f"ok-{i}",
                "value": i, "timestamp": ts}  # fmt: skip

    def bad(i, **fields):
        return {**ok(i), "identifier": f"bad-{i}", **fields}

    events = [
        ok(0),
        bad(1, value="1" * 5000),  # int() refuses over 4,300 digits
        {**ok(2), "value": "0" * 5000 + "7"},  # 7 with 5,000 leading zeros: stored, 7
        bad(3, timestamp="0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
        bad(4, timestamp="9999-12-31T23:59:59-01:00"),  # after year 9999 in UTC
        bad(5, timestamp=10**30),
        bad(6, customer=customer + "\x00"),
        bad(7, customer="cus_\ud800"),
        bad(8, event_name="api_calls\x00"),
        bad(9, event_name="\udfff"),
        {**ok(10), "identifier": "id-\x00"},
        {**ok(11), "identifier": "id-\ud83d"},
        bad(12, value=[[[[1]]]]),
        bad(13, timestamp={"a": [1]}),
        ok(14),
    ]
    response = api.post({"events": events})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 3
    assert body["identifiers"][0] == "ok-0" and body["identifiers"][14] == "ok-14"
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "invalid_value"), (3, "invalid_timestamp"),
        (4, "invalid_timestamp"), (5, "invalid_timestamp"), (6, "invalid_field"),
        (7, "invalid_field"), (8, "invalid_field"), (9, "invalid_field"),
        (10, "invalid_identifier"), (11, "invalid_identifier"), (12, "invalid_value"),
        (13, "invalid_timestamp"),
    ]  # fmt: skip
    messages = {r["index"]: r["message"] for r in body["rejected"]}
    assert messages[3] == "timestamp: outside the years 1 to 9999 in UTC"
    assert messages[6] == "customer: must not contain NUL or unpaired surrogate characters"
    assert sorted(UsageEvent.objects.values_list("identifier", "value")) == [
        ("ok-0", 0), ("ok-14", 14), ("ok-2", 7)
    ]  # fmt: skip


def test_json_numbers_too_long_for_int_are_rejected_per_event(api, customer):
    """Item 3: a JSON integer of 5,000 digits made json.loads raise ValueError, so the
    whole batch was refused; now that event alone is invalid_value (or
    invalid_timestamp)."""
    huge = "9" * 5000
    raw = (
        '{"events": ['
        f'{{"event_name": "api_calls", "customer": "{customer}", "identifier": "h1", '
        f'"value": {huge}}},'
        f'{{"event_name": "api_calls", "customer": "{customer}", "identifier": "h2", '
        f'"timestamp": -{huge}}},'
        f'{{"event_name": "api_calls", "customer": "{customer}", "identifier": "fine"}}]}}'
    )
    response = api.post(None, raw=raw)
    assert response.status_code == 202, response.content[:200]
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (0, "invalid_value"), (1, "invalid_timestamp")
    ]  # fmt: skip
    assert list(UsageEvent.objects.values_list("identifier", flat=True)) == ["fine"]


@pytest.mark.parametrize("depth", [33, 50_000])
def test_a_body_nested_too_deep_is_400_invalid_json(api, depth):
    """Item 3: 50,000 nested ``[`` raised RecursionError (500); the parser now refuses
    anything nested deeper than 32 levels, closed or not, as one 400."""
    for raw in ("[" * depth, "[" * depth + "]" * depth, '{"events": ' + "[" * depth):
        response = api.post(None, raw=raw)
        assert response.status_code == 400
        assert response.json() == {"error": {
            "code": "invalid_json", "message": "the body nests deeper than 32 levels"
        }}  # fmt: skip


def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(api, customer):
    """Item 3: the depth limit counts only real nesting: 32 levels is parsed (its deep
    value rejected per event), and brackets inside strings (escaped quotes too) do not
    count."""
    # {"events": [ { "value": 29 brackets: 3 + 29 = 32 levels, the limit: parsed.
    deep = {"event_name": "api_calls", "customer": customer, "identifier": "deep",
            "value": json.loads("[" * 29 + "1" + "]" * 29)}  # fmt: skip
    tricky = {"event_name": "api_calls", "customer": customer, "identifier": "tricky",
              "note": 'brackets-\\"' + "[" * 100 + "{" * 100}  # fmt: skip
    response = api.post({"events": [deep, tricky]})
    assert response.status_code == 202
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [(0, "invalid_value")]
    assert response.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "0001-01-01T00:00:00+01:00"}, "start"),
        ({"end": "9999-12-31T23:59:59-01:00"}, "end"),
        ({"start": "1" * 5000}, "start"),
        ({"customer": "cus_\x00"}, "customer"),
        ({"event_name": "api_calls\x00"}, "event_name"),
    ],
)
def test_summary_parameters_that_raised_are_400(api, customer, params, field):
    """Item 3 (the summary API shares the timestamp parser): 400, never 500."""
    query = {"customer": customer, "event_name": "api_calls", **params}
    response = api.summary(**query)
    assert response.status_code == 400, response.content[:200]
    assert response.json()["error"]["code"] == "invalid_parameter"
    assert response.json()["error"]["field"] == field


# -- item 4: nothing after the commit turns a stored batch into an error ----------------------
def test_a_dead_redis_cache_does_not_fail_a_stored_batch(api, customer, settings, caplog):
    """Item 4: with the cache (alert debounce) on a closed port the ingest answered 500
    after committing the batch; now it is 202 and the failure is logged."""
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    caches._settings = None
    with contextlib.suppress(AttributeError):
        del caches._connections.default  # the cache object is per thread
    event = {"event_name": "api_calls", "customer": customer, "identifier": "r-1"}
    response = api.post(event)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert UsageEvent.objects.filter(identifier="r-1").exists()
    assert "alert debounce cache unavailable" in caplog.text


def test_a_dead_broker_does_not_fail_a_stored_batch(
    api, customer, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    """Item 4: queueing the alert evaluation after the commit raised with the broker
    down; now it is logged and the answer is 202 (the alert sweep catches up)."""
    from django.core.cache import cache
    from kombu.exceptions import OperationalError

    from usage import tasks

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.evaluate_accounts_alerts, "delay", down)
    cache.clear()  # no debounce key left by an earlier test's account with the same id
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post({"event_name": "api_calls", "customer": customer, "identifier": "b-1"})
    assert len(callbacks) == 1
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert "in on_commit()" in caplog.text and "Connection refused" in caplog.text


# -- item 5: accept only what can still be reported ---------------------------------------------
def test_the_ingestion_window_ends_where_reporting_could_still_reach_stripe(
    api, customer, settings
):
    """Item 5: events between 35 days - 10 minutes (- the batching wait) and 35 days old
    were accepted and could only become too_late. Now the oldest accepted timestamp is
    35 days back plus 10 min (too-late margin) + USAGE_REPORT_BATCH_MAX_WAIT_SECONDS +
    USAGE_REPORT_INTERVAL_SECONDS + USAGE_INGEST_PAST_MARGIN_SECONDS."""
    import time_machine

    settings.USAGE_REPORT_BATCH_MAX_WAIT_SECONDS = 300
    settings.USAGE_REPORT_INTERVAL_SECONDS = 10
    settings.USAGE_INGEST_PAST_MARGIN_SECONDS = 3600
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    # 35 days back: 2026-01-25T12:00:00Z; margin 600 + 300 + 10 + 3,600 s = 1:15:10.
    oldest = datetime(2026, 1, 25, 13, 15, 10, tzinfo=UTC)
    events = [
        {"event_name": "api_calls", "customer": customer, "identifier": "edge",
         "timestamp": oldest.isoformat()},
        {"event_name": "api_calls", "customer": customer, "identifier": "a-second-older",
         "timestamp": int(oldest.timestamp()) - 1},
        {"event_name": "api_calls", "customer": customer, "identifier": "35d-less-5min",
         "timestamp": int((now - timedelta(days=35, minutes=-5)).timestamp())},
    ]  # fmt: skip
    with time_machine.travel(now, tick=False):
        response = api.post({"events": events})
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [
        {"index": i, "identifier": events[i]["identifier"], "code": "timestamp_out_of_range",
         "message": "timestamp: must be 2026-01-25T13:15:10Z or later (35 days ago, less "
                    "1:15:10 to report it to Stripe in time)"}
        for i in (1, 2)
    ]  # fmt: skip


# -- canceled subscriptions: rejected deliberately ---------------------------------------------
def test_usage_after_the_customers_subscription_ended_is_rejected_no_subscription(
    api, make_customers, subscribe
):
    """Issue 12, "usage for a canceled subscription is accepted and reported with nothing
    flagging it": an event timed after the customer's subscription ended is rejected
    no_subscription; before that, and before the first subscription started (reported
    in calendar months), it is stored; a resend of an event stored while the mirror
    still showed the subscription live stays a duplicate."""
    from djstripe.models import Subscription

    customer, never_subscribed = make_customers(2)
    sub = subscribe(customer)
    now = timezone.now().replace(microsecond=0)
    started, ended = now - timedelta(days=10), now - timedelta(days=1)

    def event(identifier, at, who=customer):
        return {"event_name": "api_calls", "customer": who, "identifier": identifier,
                "timestamp": int(at.timestamp())}  # fmt: skip

    # Stored while the mirror still shows the subscription live:
    assert api.post(event("late-1", now - timedelta(hours=1))).json()["accepted"] == 1
    # The mirror learns it started 10 days ago and ended 1 day ago (customer.subscription.deleted).
    row = Subscription.objects.get(id=sub.id)
    Subscription.objects.filter(id=sub.id).update(
        stripe_data={**row.stripe_data, "status": "canceled",
                     "start_date": int(started.timestamp()), "ended_at": int(ended.timestamp())}
    )  # fmt: skip
    events = [
        event("before-start", started - timedelta(days=2)),
        event("inside", ended - timedelta(seconds=1)),
        event("at-the-end", ended),
        event("late-1", now - timedelta(hours=1)),  # a resend: duplicate
        event("late-2", now - timedelta(hours=1)),
        {**event("x", now), "identifier": None},
        event("other", now - timedelta(hours=1), who=never_subscribed),
    ]
    body = api.post({"events": events}).json()
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    assert body["identifiers"][:5] == ["before-start", "inside", None, "late-1", None]
    assert [(r["index"], r["identifier"], r["code"]) for r in body["rejected"]] == [
        (2, "at-the-end", "no_subscription"), (4, "late-2", "no_subscription"),
        (5, None, "no_subscription"),
    ]  # fmt: skip
    assert body["rejected"][0]["message"] == (
        f"timestamp: the customer {customer!r} had no live subscription at "
        f"{ended:%Y-%m-%dT%H:%M:%SZ} (its subscription had ended)"
    )
    assert not UsageEvent.objects.filter(identifier__in=["at-the-end", "late-2"]).exists()


@pytest.mark.parametrize(
    ("spans", "day", "ended"),
    [
        ([], 5, False),  # never subscribed: kept
        ([(10, None)], 5, False),  # before the first subscription started: kept
        ([(10, None)], 12, False),  # live
        ([(10, 20)], 19, False),
        ([(10, 20)], 20, True),  # ended at 20 (end is exclusive)
        ([(10, 20), (25, None)], 22, True),  # in the gap between two subscriptions
        ([(10, 20), (25, None)], 26, False),
        ([(10, 20), (15, 30)], 25, False),  # overlapping: the second still covers it
    ],
)
def test_which_times_have_no_live_subscription(spans, day, ended):
    """The rule of no_subscription, day by day (spans: [start, end) in days)."""
    from usage.services.ingest import subscription_ended_before

    def at(d):
        return None if d is None else datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d)

    spans = [(at(s), at(e)) for s, e in spans]
    assert subscription_ended_before(spans, at(day)) is ended


# -- meters deactivated in Stripe: synced by beat ------------------------------------------------
def test_beat_syncs_a_meter_deactivated_in_stripe_and_ingestion_refuses_it(
    api, customer, stripe_client, settings
):
    """Issue 12, "a meter deactivated in Stripe keeps being accepted until someone syncs":
    beat runs billing.tasks.sync_meters_from_stripe every BILLING_METER_SYNC_SECONDS; it
    reads GET /v1/billing/meters (the emulator) and marks the meter inactive; ingestion
    refuses it once its meter cache (USAGE_METER_CACHE_SECONDS) expires. Reactivated, it
    is accepted again after the next sync."""
    import time

    from billing.tasks import sync_meters_from_stripe
    from config.celery import app, beat_schedule

    settings.BILLING_METER_SYNC_SECONDS = 45
    entry = beat_schedule()["billing-sync-meters-from-stripe"]
    assert (entry["task"], entry["schedule"]) == ("billing.tasks.sync_meters_from_stripe", 45.0)
    assert entry["task"] in app.tasks

    settings.USAGE_METER_CACHE_SECONDS = 1
    meter = Meter.objects.get(event_name="api_calls")

    def post(identifier):
        body = api.post({"event_name": "api_calls", "customer": customer, "identifier": identifier})
        return body.json()

    assert post("m-1")["accepted"] == 1  # loads the meter cache
    stripe_client.v1.billing.meters.deactivate(meter.stripe_id)
    assert sync_meters_from_stripe.apply().get() == Meter.objects.count()
    meter.refresh_from_db()
    assert meter.status == Meter.Status.INACTIVE
    time.sleep(1.1)  # the meter cache expires
    assert [r["code"] for r in post("m-2")["rejected"]] == ["unknown_meter"]

    stripe_client.v1.billing.meters.reactivate(meter.stripe_id)
    sync_meters_from_stripe.apply().get()
    time.sleep(1.1)
    assert post("m-3")["accepted"] == 1


def test_the_sync_prefers_the_known_id_then_an_active_meter_of_the_same_name():
    """Issue 12 (meter sync): Stripe can hold an old, deactivated meter with the same event
    name as the live one; matching by name alone could mark the live meter inactive."""
    from types import SimpleNamespace as NS

    from billing.services.meters import _remote_for

    old = NS(id="mtr_old", event_name="api_calls", status="inactive")
    live = NS(id="mtr_live", event_name="api_calls", status="active")
    by_id = {m.id: m for m in (old, live)}
    by_name = {"api_calls": [old, live]}
    assert _remote_for(Meter(event_name="api_calls", stripe_id=""), by_id, by_name) is live
    assert _remote_for(Meter(event_name="api_calls", stripe_id="mtr_old"), by_id, by_name) is old
    assert _remote_for(Meter(event_name="seats", stripe_id=""), by_id, by_name) is None
