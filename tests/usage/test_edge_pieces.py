"""The partial edge hours of a range without reading a busy hour's events on every view
(``usage.selectors.edge_pieces``): a head piece ``[hour, end)`` whose hour has nothing
stamped at or after ``end`` comes from the hour's rollup row (less the hour's quantity
adjustments), any other piece from the ledger once per version of that rollup row."""

# ruff: noqa: F811  (the fixtures imported from test_adjust are parameters here)

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Meter
from tests.usage.test_adjust import T0, growth_unreported  # noqa: F401 (fixtures)
from tests.usage.test_rollup_reader import EVENTS, METERS, H, M, _ingest, setup  # noqa: F401
from usage.selectors.rollups import rollup_value, rollup_values
from usage.services.correction_adjust import usage_quantity_adjust
from usage.services.corrections import usage_events_void
from usage.services.ingest import usage_events_ingest

pytestmark = pytest.mark.django_db
LEDGER = re.compile(r"\busage_usageevent\b")  # the table, quoted (ORM) or not (raw SQL)


def _ledger_reads(captured) -> int:
    return sum(bool(LEDGER.search(q["sql"])) for q in captured.captured_queries)


def _values(account, meters, start, end) -> dict[str, int]:
    got = rollup_values(ranges={account.pk: (start, end)}, meters=meters.values())
    by_pk = {m.pk: name for name, m in meters.items()}
    return {by_pk[m]: buckets[0].value for (_, m), buckets in got.items()}


def test_a_head_piece_with_nothing_after_its_end_comes_from_the_rollup(setup):
    (account, _), meters = setup
    cache.clear()
    # [23:00, 23:30): the 23:00 hour's only event is 4 at 23:05, before 23:30, so the
    # hour's rollup row is the piece: sum 4, count 1, last 4; no ledger read.
    with CaptureQueriesContext(connection) as captured:
        values = _values(account, meters, H + 60 * M, H + 90 * M)
    assert values == {"data_transfer_gb": 4, "api_calls": 1, "seats": 4}
    assert _ledger_reads(captured) == 0


def test_a_head_piece_with_an_event_after_its_end_reads_the_ledger(setup):
    (account, _), meters = setup
    cache.clear()
    # [22:00, 22:30): the 22:00 hour has 1 at 22:10 and 2 at 22:40; the rollup row holds
    # both (3), the piece only the first: sum 1, count 1, last 1.
    with CaptureQueriesContext(connection) as captured:
        values = _values(account, meters, H, H + 30 * M)
    assert values == {"data_transfer_gb": 1, "api_calls": 1, "seats": 1}
    assert _ledger_reads(captured) >= 1


def test_no_rollup_row_means_no_events_and_no_ledger_read(setup):
    (account, _), meters = setup
    cache.clear()
    # [02:10, 02:40) on March 10: nothing was ingested in the 02:00 hour.
    with CaptureQueriesContext(connection) as captured:
        values = _values(account, meters, H + 250 * M, H + 280 * M)
    assert values == {}
    assert _ledger_reads(captured) == 0


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_tail_piece_is_read_once_per_version_of_its_hour(setup, make_customers):
    (account, _), meters = setup
    gb = meters["data_transfer_gb"]
    cache.clear()
    start, end = H + 30 * M, H + 60 * M  # [22:30, 23:00): the 2 at 22:40
    with CaptureQueriesContext(connection) as first:
        assert rollup_value(account_id=account.pk, meter=gb, start=start, end=end) == 2
    assert _ledger_reads(first) >= 1
    with CaptureQueriesContext(connection) as again:
        assert rollup_value(account_id=account.pk, meter=gb, start=start, end=end) == 2
    assert _ledger_reads(again) == 0
    # An event in another hour leaves the piece cached; one in its hour is counted:
    # 2 + 64 = 66 at once.
    customer = account.djstripe_customers.get().id
    for value, at, tag in ((128, H + 70 * M, "other"), (64, H + 50 * M, "late")):
        result = usage_events_ingest(
            events=[{"event_name": "data_transfer_gb", "customer": customer, "value": value,
                     "timestamp": int(at.timestamp()), "identifier": tag}],
            now=H + timedelta(days=1),
        )  # fmt: skip
        assert result.accepted == 1
        with CaptureQueriesContext(connection) as after:
            value_now = rollup_value(account_id=account.pk, meter=gb, start=start, end=end)
        assert value_now == (2 if tag == "other" else 66)
        assert _ledger_reads(after) == (0 if tag == "other" else 1)


@pytest.mark.django_db(transaction=True)
def test_a_head_piece_leaves_the_hours_adjustment_to_the_whole_hour(
    stripe_client, growth_unreported
):
    _, account, customer, _ = growth_unreported
    calls = Meter.objects.get(event_name="api_calls")
    usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": customer,
                 "timestamp": int((T0 + 10 * M).timestamp()), "identifier": f"c{i}"}
                for i in range(5)],
        now=T0 + timedelta(hours=1),
    )  # fmt: skip
    usage_quantity_adjust(
        account=account, meter=calls, period_start=T0, quantity=-2, reason="outage retries",
        client=stripe_client, now=T0 + 40 * M,
    )  # fmt: skip
    cache.clear()
    # The 00:00 hour's row: 5 calls − 2 = 3. A range that cuts the hour short counts its
    # 5 calls (the adjustment only counts in a whole hour), from the row: no ledger read.
    with CaptureQueriesContext(connection) as captured:
        cut = rollup_value(account_id=account.pk, meter=calls, start=T0, end=T0 + 30 * M)
    assert cut == 5
    assert _ledger_reads(captured) == 0
    assert rollup_value(account_id=account.pk, meter=calls, start=T0, end=T0 + 60 * M) == 3


@pytest.mark.django_db(transaction=True)
def test_a_voided_event_is_out_of_every_partial_hour(stripe_client, growth_unreported):
    _, account, customer, _ = growth_unreported
    calls = Meter.objects.get(event_name="api_calls")
    usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": customer,
                 "timestamp": int((T0 + minute * M).timestamp()), "identifier": f"v{minute}"}
                for minute in (10, 20, 40)],
        now=T0 + timedelta(hours=1),
    )  # fmt: skip
    usage_events_void(
        account=account, meter=calls, identifiers=["v20"], reason="test call",
        client=stripe_client, now=T0 + 45 * M,
    )  # fmt: skip
    cache.clear()
    # Calls at 00:10, 00:20 (voided) and 00:40: [00:05, 00:30) holds one call, from the
    # ledger (not a head piece); [00:00, 00:30) one, from the ledger (00:40 is later);
    # [00:15, 01:00) one; the whole hour two.
    for start, end, calls_in in ((5, 30, 1), (0, 30, 1), (15, 60, 1), (0, 60, 2)):
        got = rollup_value(
            account_id=account.pk, meter=calls, start=T0 + start * M, end=T0 + end * M
        )
        assert got == calls_in, (start, end)
