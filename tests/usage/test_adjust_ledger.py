"""Quantity adjustments in the rollups every reader reads: count meters (the adjustment
is in the count), a later void keeps the hour's adjustments, and the admin form that makes
one. Test clock as in test_adjust (period 15 Jan .. 15 Feb 2026)."""

# ruff: noqa: F811  (the fixtures imported from test_adjust are parameters here)

from datetime import timedelta

import pytest
import time_machine

from billing.models import Meter
from tests.usage.conftest import stripe_total
from tests.usage.test_adjust import (  # noqa: F401 (fixtures)
    FEB_15,
    HOUR,
    T0,
    _fast,
    _ledger,
    _summaries,
    growth_unreported,
)
from usage.models import UsageCorrection, UsageRollup
from usage.selectors.drilldown import day_buckets, hour_buckets, hour_events, range_total
from usage.services.correction_adjust import usage_quantity_adjust
from usage.services.corrections import usage_events_void
from usage.services.ingest import usage_events_ingest
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)
MINUTE = timedelta(minutes=1)


def test_count_meter_adjustment_is_in_the_count_and_a_later_void_keeps_it(
    stripe_client, growth_unreported
):
    _, account, cus, gb = growth_unreported
    calls = Meter.objects.get(event_name="api_calls")
    ts = int((T0 + 10 * MINUTE).timestamp())
    usage_events_ingest(
        events=[{"event_name": "api_calls", "customer": cus, "timestamp": ts,
                 "identifier": f"c{i}"} for i in range(5)],
        now=T0 + HOUR,
    )  # fmt: skip
    made_at = T0 + 40 * MINUTE  # the calls' hour, 00:00
    usage_quantity_adjust(
        account=account, meter=calls, period_start=T0, quantity=-2, reason="outage retries",
        client=stripe_client, now=made_at,
    )  # fmt: skip
    # A count meter reads the count: 5 calls − 2 = 3, in the hour's row and the period.
    row = UsageRollup.objects.get(account=account, meter=calls, hour=T0)
    assert (row.event_count, row.sum_value) == (3, 5)
    assert range_total(account_id=account.pk, meter=calls, start=T0, end=FEB_15) == 3
    # Voiding one call recomputes the hour from the ledger and adds the adjustment back:
    # 4 calls left − 2 = 2 (not 4).
    usage_events_void(
        account=account, meter=calls, identifiers=["c0"], reason="test call",
        client=stripe_client, now=made_at,
    )  # fmt: skip
    row.refresh_from_db()
    assert row.event_count == 4 - 2 == 2
    # Same for the sum meter: the 142 GB hour adjusted by −100, then 12 GB voided:
    # 110 + 20 − 100 = 30.
    usage_quantity_adjust(
        account=account, meter=gb, period_start=T0, quantity=-100, reason="outage retries",
        client=stripe_client, now=made_at,
    )  # fmt: skip
    usage_events_void(
        account=account, meter=gb, identifiers=["g12"], reason="test upload",
        client=stripe_client, now=made_at,
    )  # fmt: skip
    assert _ledger(account, gb) == 110 + 20 - 100 == 30
    # The drill-down levels add up: period = its day = its hour = events + adjustment.
    for meter, total in ((calls, 2), (gb, 30)):
        args = {"account_id": account.pk, "meter": meter}
        [day] = day_buckets(**args, start=T0, end=FEB_15)
        [hour] = hour_buckets(**args, start=T0, end=T0 + timedelta(days=1))
        page = hour_events(**args, start=T0, end=T0 + HOUR)
        counted = [e for e in page.events if e.voided_by is None]
        events = len(counted) if meter == calls else sum(e.value for e in counted)
        assert day.value == hour.value == events + sum(a.quantity for a in page.adjustments)
        assert day.value == total
    # Everything reported: the ledger and Stripe's summaries agree (2 calls, 30 GB).
    usage_report_pass(now=T0 + HOUR)
    assert _summaries(stripe_client, cus) == 30
    assert (
        stripe_total(stripe_client, event_name="api_calls", customer=cus, start=T0, end=FEB_15) == 2
    )


@pytest.fixture
def at_t0_plus_1h():
    with time_machine.travel(T0 + HOUR, tick=False):
        yield


def test_admin_adjusts_a_quantity_and_lists_it(admin_client, growth_unreported, at_t0_plus_1h):
    _, account, _, gb = growth_unreported
    url = "/admin/usage/usagecorrection/add/"
    form = {"account": account.pk, "meter": gb.pk, "kind": "adjust", "reason": "outage"}
    # No quantity: the form names the field, nothing written.
    response = admin_client.post(url, {**form, "moment": "2026-01-20 10:00:00"})
    assert response.status_code == 200
    assert b"Give the signed quantity" in response.content
    # The service's refusal (below 0: the period holds 142 GB) is shown on the form.
    refused = admin_client.post(
        url, {**form, "moment": "2026-01-20 10:00:00", "adjust_by": "-500"}, follow=True
    )
    assert b"would take it below 0" in refused.content
    assert not UsageCorrection.objects.exists()
    response = admin_client.post(url, {**form, "moment": "2026-01-20 10:00:00", "adjust_by": "-40"})
    assert response.status_code == 302
    correction = UsageCorrection.objects.get()
    # The moment's billing period (15 Jan .. 15 Feb) was adjusted: 142 − 40 = 102.
    assert (correction.kind, correction.quantity, correction.period_start) == ("adjust", -40, T0)
    assert correction.created_by.is_superuser and correction.created_at == T0 + HOUR
    assert _ledger(account, gb) == 102
    page = admin_client.get("/admin/usage/usagecorrection/").content.decode()
    assert "Adjust a quantity" in page and "Applied" in page
