"""Parity never contradicts itself: when the ledger equals the invoiced quantity there is
nothing to explain. Seen in the demo: a test-clock invoice read "all agree" and then
listed 9,291 units "reported after finalization" and -9,291 "not explained", because a
report's ``sent_at`` is wall time while a test clock's invoice time is not."""

from datetime import timedelta

import pytest

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Meter
from usage.models import UsageReport
from usage.selectors.parity import meter_parity
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db


def test_ledger_equal_to_the_invoice_has_no_differences(pro_account):
    usage_report_pass(flush=True)
    calls = Meter.objects.get(event_name="api_calls")
    assert UsageReport.objects.filter(meter=calls, status="sent").exists()
    state = subscription_state_for_account(account=pro_account)
    parity = meter_parity(
        account_id=pro_account.pk,
        meter=calls,
        start=state.period_start,
        end=state.period_end,
        invoiced=10_500,  # the fixture's 10,500 calls, all on the invoice
        # an invoice time before every report's (wall-clock) sent_at, as on a test clock
        finalized_at=state.period_start - timedelta(days=1),
        spec=None,
    )
    assert (parity.ledger, parity.reported, parity.invoiced) == (10_500, 10_500, 10_500)
    assert parity.matches
    assert parity.differences == ()


def test_a_real_gap_is_still_explained(pro_account):
    usage_report_pass(flush=True)
    calls = Meter.objects.get(event_name="api_calls")
    state = subscription_state_for_account(account=pro_account)
    parity = meter_parity(
        account_id=pro_account.pk,
        meter=calls,
        start=state.period_start,
        end=state.period_end,
        invoiced=10_000,  # 500 of the 10,500 calls are not on the invoice
        finalized_at=state.period_start - timedelta(days=1),
        spec=None,
    )
    assert not parity.matches
    assert sum(d.units for d in parity.differences) == 500  # 10,500 - 10,000
