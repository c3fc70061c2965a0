"""The partitioned ledger (PostgreSQL): identifiers unique across monthly partitions,
events in their month's partition, partitions created ahead, the retention path
(export, detach, drop), lookups by identifier, and the migration's round trip.

Times are pinned relative to the real month: tests/conftest.py partitions the test
database from 35 days back to three months ahead of the real now.
"""

import csv
import gzip
import hashlib
import importlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection

from billing.models import Account, Meter
from usage.models import EventIdentifier, UsageEvent, UsageReport, UsageRollup
from usage.selectors.events_by_identifier import events_by_identifier
from usage.services.ingest import usage_events_ingest
from usage.services.ledger_archive import manifest_path
from usage.services.ledger_partitions import (
    ensure_partitions,
    month_start,
    next_month,
    partition_name,
)

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the ledger is partitioned on PostgreSQL only (SQLite keeps one table)",
)

THIS_MONTH = month_start(datetime.now(UTC))
NEXT_MONTH = next_month(THIS_MONTH)


def _months_after(month: datetime, n: int) -> datetime:
    for _ in range(n):
        month = next_month(month)
    return month


def _send(events: list[dict], now: datetime) -> dict:
    return usage_events_ingest(events=events, now=now).as_dict()


def _partition_of(identifier: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM usage_usageevent WHERE identifier = %s",
            [identifier],
        )
        return [name for (name,) in cursor.fetchall()]


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


# -- identifiers unique across partitions ---------------------------------------------
def test_same_identifier_a_month_later_is_a_duplicate_never_stored_twice(customer):
    """No timestamp given: the resend a month on would be stored in the next month's
    partition (its timestamp is "now"), but it is the same event: a duplicate."""
    event = {"event_name": "api_calls", "customer": customer, "identifier": "m-dup"}
    first = _send([event], THIS_MONTH + timedelta(days=3, hours=12))
    again = _send([event], NEXT_MONTH + timedelta(days=3, hours=12))
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, [])
    assert UsageEvent.objects.filter(identifier="m-dup").count() == 1
    if connection.vendor == "postgresql":
        assert _partition_of("m-dup") == [partition_name(THIS_MONTH)]


def test_same_identifier_with_another_timestamp_a_month_apart_is_a_conflict(customer):
    first_at = THIS_MONTH + timedelta(days=3, hours=12)
    later_at = NEXT_MONTH + timedelta(days=3, hours=12)
    event = {"event_name": "api_calls", "customer": customer, "identifier": "m-conf",
             "value": 2, "timestamp": int(first_at.timestamp())}  # fmt: skip
    assert _send([event], first_at)["accepted"] == 1
    moved = {**event, "timestamp": int(later_at.timestamp())}
    body = _send([moved, {**event, "value": 3, "timestamp": int(later_at.timestamp())}], later_at)
    assert body["accepted"] == 0
    assert [r["code"] for r in body["rejected"]] == ["idempotency_conflict"] * 2
    stored = UsageEvent.objects.get(identifier="m-conf")
    assert (stored.value, stored.timestamp) == (2, first_at)
    assert EventIdentifier.objects.get(identifier="m-conf").event_id == stored.id


def test_one_batch_with_an_identifier_in_two_months_stores_the_first(customer):
    now = NEXT_MONTH + timedelta(days=2)
    a = {"event_name": "api_calls", "customer": customer, "identifier": "b-two", "value": 1,
         "timestamp": int((NEXT_MONTH - timedelta(hours=1)).timestamp())}  # fmt: skip
    b = {**a, "timestamp": int((NEXT_MONTH + timedelta(hours=1)).timestamp())}
    body = _send([a, b, a], now)
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "idempotency_conflict")]
    assert UsageEvent.objects.filter(identifier="b-two").count() == 1
    if connection.vendor == "postgresql":
        assert _partition_of("b-two") == [partition_name(THIS_MONTH)]


# -- events in their month's partition --------------------------------------------------
@postgresql_only
def test_events_land_in_their_months_partition_or_the_default_one(customer):
    far = _months_after(THIS_MONTH, 9) + timedelta(days=1)  # no partition made that far
    sends = [
        ("p-this", THIS_MONTH + timedelta(hours=1)),
        ("p-last-second", NEXT_MONTH - timedelta(seconds=1)),
        ("p-next", NEXT_MONTH),
        ("p-far", far),
    ]
    for identifier, at in sends:
        event = {"event_name": "api_calls", "customer": customer, "identifier": identifier,
                 "timestamp": int(at.timestamp())}  # fmt: skip
        assert _send([event], at)["accepted"] == 1, identifier
    assert {identifier: _partition_of(identifier) for identifier, _ in sends} == {
        "p-this": [partition_name(THIS_MONTH)],
        "p-last-second": [partition_name(THIS_MONTH)],
        "p-next": [partition_name(NEXT_MONTH)],
        "p-far": ["usage_usageevent_default"],
    }


# -- partitions ahead -------------------------------------------------------------------
@postgresql_only
def test_ensure_partitions_creates_months_ahead_and_moves_default_rows(customer):
    start = _months_after(THIS_MONTH, 5)  # conftest made partitions up to +3
    at = start + timedelta(days=10, hours=4)
    event = {"event_name": "api_calls", "customer": customer, "identifier": "ahead-1",
             "value": 7, "timestamp": int(at.timestamp())}  # fmt: skip
    assert _send([event], at)["accepted"] == 1
    assert _partition_of("ahead-1") == ["usage_usageevent_default"]
    rollups = list(UsageRollup.objects.values_list("hour", "sum_value", "event_count"))
    event_id = UsageEvent.objects.get(identifier="ahead-1").id

    result = ensure_partitions(now=start, months_ahead=2)

    made = [partition_name(_months_after(start, n)) for n in range(3)]
    assert result.created == made
    assert result.moved == {made[0]: 1, made[1]: 0, made[2]: 0}
    assert _partition_of("ahead-1") == [made[0]]
    assert _count("usage_usageevent_default") == 0
    moved = UsageEvent.objects.get(identifier="ahead-1")
    assert (moved.id, moved.value, moved.timestamp) == (event_id, 7, at)
    assert list(UsageRollup.objects.values_list("hour", "sum_value", "event_count")) == rollups
    # Attached with the ledger's indexes, and idempotent.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", [made[0]])
        (on_partition,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'usage_usageevent_default'"
        )
        assert on_partition == cursor.fetchone()[0] > 1
    assert ensure_partitions(now=start, months_ahead=2).created == []
    later = {
        **event,
        "identifier": "ahead-2",
        "timestamp": int((at + timedelta(days=31)).timestamp()),
    }
    assert _send([later], at + timedelta(days=31))["accepted"] == 1
    assert _partition_of("ahead-2") == [made[1]]


def test_ensure_partitions_is_a_no_op_on_sqlite():
    if connection.vendor == "postgresql":
        pytest.skip("SQLite only: PostgreSQL is covered above")
    assert ensure_partitions().created == []


def test_the_beat_task_runs_daily_and_is_registered():
    import usage.tasks
    from config.celery import beat_schedule

    entry = beat_schedule()["usage-ensure-ledger-partitions"]
    assert entry["task"] == "usage.tasks.ensure_ledger_partitions"
    assert str(entry["schedule"].hour) == "{3}"
    assert usage.tasks.ensure_ledger_partitions().startswith("ledger partitions: ")


# -- lookups by identifier --------------------------------------------------------------
def test_events_by_identifier_equal_a_filter_on_identifier(customer):
    events = [
        {"event_name": "api_calls", "customer": customer, "identifier": f"look-{i}",
         "timestamp": int((_months_after(THIS_MONTH, i) + timedelta(days=1)).timestamp())}
        for i in range(3)
    ]  # fmt: skip
    for event in events:
        assert _send([event], datetime.fromtimestamp(event["timestamp"], UTC))["accepted"] == 1
    wanted = ["look-0", "look-2", "missing"]
    found = events_by_identifier(identifiers=wanted)
    assert sorted(found.values_list("identifier", flat=True)) == ["look-0", "look-2"]
    assert set(found) == set(UsageEvent.objects.filter(identifier__in=wanted))
    assert not events_by_identifier(identifiers=["missing"]).exists()
    if connection.vendor == "postgresql":  # the plan reads only the partitions needed
        with connection.cursor() as cursor:
            sql, params = found.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row for (row,) in cursor.fetchall())
        assert partition_name(THIS_MONTH) in plan
        assert partition_name(_months_after(THIS_MONTH, 2)) in plan
        assert partition_name(NEXT_MONTH) not in plan
        assert "usage_usageevent_default" not in plan


# -- retention: archive a closed month --------------------------------------------------
def _reported_events(customer: str, month: datetime, n: int, prefix: str) -> list[UsageEvent]:
    """n events in ``month`` (ingested then), reported in one sent report."""
    at = month + timedelta(days=2, hours=6)
    events = [
        {"event_name": "api_calls", "customer": customer, "identifier": f"{prefix}-{i}",
         "value": i + 1, "timestamp": int((at + timedelta(minutes=i)).timestamp())}
        for i in range(n)
    ]  # fmt: skip
    assert _send(events, at + timedelta(hours=1))["accepted"] == n
    account = Account.objects.get(djstripe_customers__id=customer)
    meter = Meter.objects.get(event_name="api_calls")
    report = UsageReport.objects.create(
        account=account, meter=meter, period_start=month, period_end=next_month(month),
        sequence=1, identifier=f"rep-{prefix}", stripe_customer_id=customer,
        event_name="api_calls", value=sum(range(1, n + 1)), event_count=n, timestamp=at,
        status=UsageReport.Status.SENT, next_attempt_at=at, sent_at=at,
    )  # fmt: skip
    UsageEvent.objects.filter(identifier__startswith=f"{prefix}-").update(report=report)
    return list(UsageEvent.objects.filter(report=report).order_by("id"))


@postgresql_only
def test_archive_exports_the_partition_detaches_it_and_keeps_identifiers(customer, tmp_path):
    events = _reported_events(customer, THIS_MONTH, 4, "arc")
    other = _reported_events(customer, NEXT_MONTH, 1, "keep")  # another month: untouched
    rollups = sorted(UsageRollup.objects.values_list("hour", "sum_value", "event_count"))
    target = tmp_path / "ledger.csv.gz"
    later = _months_after(THIS_MONTH, 2) + timedelta(days=1)  # THIS_MONTH is closed then

    with time_machine.travel(later, tick=False):
        out = io.StringIO()
        call_command(
            "archive_ledger_partition",
            f"--month={THIS_MONTH:%Y-%m}", f"--to={target}", "--detach", stdout=out,
        )  # fmt: skip

    name = partition_name(THIS_MONTH)
    manifest = json.loads(manifest_path(target).read_text())
    raw = target.read_bytes()
    assert manifest["sha256"] == hashlib.sha256(raw).hexdigest()
    assert manifest["csv_sha256"] == hashlib.sha256(gzip.decompress(raw)).hexdigest()
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(raw).decode())))
    assert manifest["rows"] == len(rows) == 4
    assert (manifest["min_id"], manifest["max_id"]) == (events[0].id, events[-1].id)
    assert (manifest["table"], manifest["month"]) == (name, f"{THIS_MONTH:%Y-%m}")
    assert [(int(r["id"]), r["identifier"], int(r["value"])) for r in rows] == [
        (e.id, e.identifier, e.value) for e in events
    ]
    assert f"{name}: 4 rows" in out.getvalue()
    # Detached (kept as a plain table), gone from the ledger; the rest stays.
    assert UsageEvent.objects.filter(identifier__startswith="arc-").count() == 0
    assert _count(name) == 4
    assert list(UsageEvent.objects.filter(identifier__startswith="keep-")) == other
    assert sorted(UsageRollup.objects.values_list("hour", "sum_value", "event_count")) == rollups
    assert EventIdentifier.objects.filter(identifier__startswith="arc-").count() == 4
    # An archived identifier sent again is still a duplicate, stored nowhere.
    resent = {"event_name": "api_calls", "customer": customer, "identifier": "arc-0", "value": 1,
              "timestamp": int(events[0].timestamp.timestamp())}  # fmt: skip
    assert _send([resent], events[0].timestamp + timedelta(hours=1))["duplicates"] == 1
    assert _count("usage_usageevent_default") == 0


@postgresql_only
def test_archive_with_drop_drops_the_table(customer, tmp_path):
    _reported_events(customer, THIS_MONTH, 2, "drop")
    from usage.services.ledger_archive import partition_archive

    manifest = partition_archive(
        month=THIS_MONTH,
        to=tmp_path / "d.csv.gz",
        detach=True,
        drop=True,
        now=_months_after(THIS_MONTH, 2),
    )
    assert (manifest.rows, manifest.dropped) == (2, True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [partition_name(THIS_MONTH)])
        assert cursor.fetchone()[0] is None


@postgresql_only
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month=2026-13"], "--month '2026-13': expected YYYY-MM"),
        (["--month=CURRENT"], "only months before the previous one"),
        (["--month=PREVIOUS"], "only months before the previous one"),
        (["--month=OLD"], "not reported to Stripe yet"),
        (["--month=OLD", "--drop"], "--drop needs --detach"),
        (["--month=OLD", "--to=/nonexistent/x.csv.gz"], "--to /nonexistent/x.csv.gz: folder"),
        (["--month=OLD", "--to=TMP/x.csv"], "must end in .csv.gz"),
    ],
)
def test_archive_refusals_name_the_option(customer, tmp_path, args, message):
    at = THIS_MONTH + timedelta(days=2)
    event = {"event_name": "api_calls", "customer": customer, "identifier": "unrep",
             "timestamp": int(at.timestamp())}  # fmt: skip
    assert _send([event], at)["accepted"] == 1  # never reported
    now = _months_after(THIS_MONTH, 2) + timedelta(days=3)
    months = {"CURRENT": now, "PREVIOUS": next_month(THIS_MONTH), "OLD": THIS_MONTH}
    argv = [a.replace("TMP", str(tmp_path)) for a in args]
    for word, month in months.items():
        argv = [a.replace(word, f"{month:%Y-%m}") for a in argv]
    if not any(a.startswith("--to") for a in argv):
        argv.append(f"--to={tmp_path / 'x.csv.gz'}")
    with time_machine.travel(now, tick=False), pytest.raises(CommandError, match=message):
        call_command("archive_ledger_partition", *argv)
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert _partition_of("unrep") == [partition_name(THIS_MONTH)]  # nothing detached


# -- the migration's partitioning, both ways --------------------------------------------
@postgresql_only
def test_unpartition_then_partition_keeps_rows_ids_and_the_sequence(customer):
    migration = importlib.import_module("usage.migrations.0016_partitioned_ledger")
    for i, at in enumerate([THIS_MONTH + timedelta(days=1), NEXT_MONTH + timedelta(days=1)]):
        event = {"event_name": "api_calls", "customer": customer, "identifier": f"rt-{i}",
                 "value": i + 5, "timestamp": int(at.timestamp())}  # fmt: skip
        assert _send([event], at)["accepted"] == 1
    before = list(UsageEvent.objects.values_list("id", "identifier", "value", "timestamp"))
    with connection.cursor() as cursor:  # as in the migration's own transaction
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    migration.unpartition_ledger(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'usage_usageevent'")
        assert cursor.fetchone()[0] == "r"
    assert list(UsageEvent.objects.values_list("id", "identifier", "value", "timestamp")) == before

    migration.partition_ledger(connection)
    assert list(UsageEvent.objects.values_list("id", "identifier", "value", "timestamp")) == before
    assert _partition_of("rt-0") == [partition_name(THIS_MONTH)]
    assert _partition_of("rt-1") == [partition_name(NEXT_MONTH)]
    at = NEXT_MONTH + timedelta(days=2)
    event = {"event_name": "api_calls", "customer": customer, "identifier": "rt-new",
             "timestamp": int(at.timestamp())}  # fmt: skip
    assert _send([event], at)["accepted"] == 1
    assert UsageEvent.objects.get(identifier="rt-new").id > max(row[0] for row in before)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_transactions_store_an_identifier_once(customer):
    """Batch A (this month) claims the identifier and keeps its transaction open; batch
    B (same event resent a month on, no timestamp: next month's partition) waits on the
    claim, then finds it taken: a duplicate. One row, in A's partition."""
    import threading

    from django.db import connections, transaction

    event = {"event_name": "api_calls", "customer": customer, "identifier": "race-1"}
    claimed, release = threading.Event(), threading.Event()
    answers = {}

    def batch_a():
        try:
            with transaction.atomic():
                answers["a"] = _send([event], THIS_MONTH + timedelta(days=4))
                claimed.set()
                release.wait(10)
        finally:
            connections.close_all()

    def batch_b():
        try:
            answers["b"] = _send([event], NEXT_MONTH + timedelta(days=4))
        finally:
            connections.close_all()

    a = threading.Thread(target=batch_a)
    a.start()
    assert claimed.wait(10)
    b = threading.Thread(target=batch_b)
    b.start()
    b.join(1.0)
    assert b.is_alive()  # waiting on A's claim of the identifier
    release.set()
    a.join(10)
    b.join(10)
    assert answers["a"]["accepted"] == 1
    assert (answers["b"]["accepted"], answers["b"]["duplicates"]) == (0, 1)
    assert _partition_of("race-1") == [partition_name(THIS_MONTH)]
