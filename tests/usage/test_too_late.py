from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Meter
from usage.models import UsageReport
from usage.too_late import too_late_amount_at_stake

pytestmark = pytest.mark.django_db


def _report(account, meter, *, period_start, status, value, seq, minutes=0):
    now = timezone.now()
    return UsageReport.objects.create(
        account=account, meter=meter, period_start=period_start,
        period_end=period_start + timedelta(days=30), sequence=seq,
        identifier=f"t-{meter.event_name}-{seq}", stripe_customer_id="cus_x",
        event_name=meter.event_name, value=value, event_count=value,
        timestamp=period_start + timedelta(minutes=minutes), status=status,
        next_attempt_at=now,
    )  # fmt: skip


def test_amount_at_stake_is_the_marginal_cost_under_the_plan(pro_account):
    period_start = subscription_state_for_account(account=pro_account).period_start
    calls = Meter.objects.get(event_name="api_calls")
    _report(pro_account, calls, period_start=period_start, status="sent", value=10_500, seq=1)
    late = _report(pro_account, calls, period_start=period_start, status="too_late",
                   value=500, seq=2)  # fmt: skip
    # Pro's calls: first 10,000 free, then 0.2¢. 10,500 sent cost 500 × 0.2 = 100¢;
    # with the 500 late ones 11,000 would cost 1,000 × 0.2 = 200¢: 100¢ at stake.
    assert too_late_amount_at_stake(report=late) == 100

    seats = Meter.objects.get(event_name="seats")
    _report(pro_account, seats, period_start=period_start, status="sent", value=3, seq=3)
    late_seats = _report(pro_account, seats, period_start=period_start, status="too_late",
                         value=5, seq=4, minutes=5)  # fmt: skip
    # A `last` meter: 5 seats instead of the 3 sent, at 1,000¢ each: 2,000¢ at stake.
    assert too_late_amount_at_stake(report=late_seats) == 2_000


def test_the_admin_lists_the_amount_for_too_late_reports(client, pro_account):
    period_start = subscription_state_for_account(account=pro_account).period_start
    calls = Meter.objects.get(event_name="api_calls")
    _report(pro_account, calls, period_start=period_start, status="sent", value=10_500, seq=1)
    _report(pro_account, calls, period_start=period_start, status="too_late", value=500, seq=2)
    staff = get_user_model().objects.create_superuser("staff", "s@example.com", "pw")
    client.force_login(staff)
    html = client.get("/admin/usage/usagereport/", {"status__exact": "too_late"}).content
    assert b"$1.00" in html  # 100¢ at stake
