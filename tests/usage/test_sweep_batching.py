"""The sweep is set-based (issue 19): a chunk of accounts costs a constant number of
queries, whether every account is evaluated or all are skipped as unchanged; only a
crossed rule or a newly reached budget level takes a per-account path."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Meter
from usage.models_budgets import Budget
from usage.services.alerts import SweepStats, alerts_evaluate_all

pytestmark = pytest.mark.django_db


def _queries(*, skip: bool) -> tuple[int, SweepStats]:
    stats = SweepStats()
    with CaptureQueriesContext(connection) as queries:
        assert alerts_evaluate_all(skip_unchanged=skip, stats=stats) == 0
    return len(queries), stats


def test_queries_are_constant_in_the_number_of_accounts(
    pro_account, other_account, make_customers, subscribe, django_capture_on_commit_callbacks
):
    # Budgets on two accounts, so that their reads are in both counts.
    calls = Meter.objects.get(event_name="api_calls")
    for account in (pro_account, other_account):
        Budget.objects.create(account=account, kind="units", meter=calls, limit=10**9)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate_all() == 2  # Pro's default rules, claimed per account
    alerts_evaluate_all()  # Pro's new deliveries: evaluated once more, then recorded
    full_2, stats = _queries(skip=False)
    steady_2, skipped = _queries(skip=True)
    assert (stats.evaluated, skipped.skipped) == (2, 2)

    for customer_id in make_customers(3, prefix="More"):
        subscribe(customer_id, "starter")
    alerts_evaluate_all()
    full_5, stats = _queries(skip=False)
    steady_5, skipped = _queries(skip=True)
    assert (stats.evaluated, skipped.skipped) == (5, 5)
    assert full_5 == full_2
    assert steady_5 == steady_2
    # And the steady state reads less: no subscription state, usage or summary.
    assert steady_2 < full_2
