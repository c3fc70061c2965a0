"""Acceptance 3: plan change through the emulator (billing.services.plan_change).

Upgrade now: the proration preview equals the invoice that follows. At period end:
nothing changes until the boundary, then the renewal bills the new plan's base fee.

The account subscribes on 2026-04-01 00:00 UTC (a test clock); April has 30 days, so the
first monthly period is [Apr 1, May 1) = 2,592,000 s. Pro's base fee is $99.00 (9,900
cents); Starter and Growth have no licensed price (metered only, never prorated)."""

from datetime import UTC, datetime

import pytest
from djstripe.models import Subscription, SubscriptionSchedule

from billing.mirror.subscriptions import subscription_state_for_account
from billing.services.accounts import account_create
from billing.services.plan_change import (
    NOW,
    PERIOD_END,
    PlanChangeError,
    plan_change_apply,
    plan_change_pending,
    plan_change_preview,
)
from billing.services.subscriptions import subscription_cancel_at_period_end, subscription_create
from billing.services.test_clocks import test_clock_advance

pytestmark = pytest.mark.django_db

APR_1 = datetime(2026, 4, 1, tzinfo=UTC)
APR_16 = datetime(2026, 4, 16, tzinfo=UTC)  # half-way: 15 of 30 days left
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)


def _on(stripe_client, demo_catalog, plan_key: str, *, currency: str = "usd"):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(APR_1.timestamp())}
    )
    account = account_create(name="Initech", billing_email="ap@initech.example")
    if currency != "usd":
        account.currency = currency
        account.save(update_fields=["currency"])
    subscription_create(account=account, plan=demo_catalog[plan_key], test_clock=clock.id)
    return account, clock.id


def _mirror_from_stripe(stripe_client, account) -> str:
    """What the customer.subscription.updated webhook does: dj-stripe syncs the object."""
    sub = Subscription.objects.get(customer__subscriber=account)
    Subscription.sync_from_stripe_data(stripe_client.v1.subscriptions.retrieve(sub.id))
    return subscription_state_for_account(account=account).plan.key


def _price_ids(stripe_client, account) -> set[str]:
    sub = Subscription.objects.get(customer__subscriber=account)
    remote = stripe_client.v1.subscriptions.retrieve(sub.id)
    return {item.price.id for item in remote["items"].data}


def _plan_price_ids(plan, currency: str = "usd") -> set[str]:
    return set(plan.prices.filter(currency=currency).values_list("stripe_price_id", flat=True))


def test_upgrade_now_the_preview_equals_the_invoice(stripe_client, demo_catalog):
    account, clock = _on(stripe_client, demo_catalog, "starter")
    test_clock_advance(client=stripe_client, clock_id=clock, to=APR_16)
    pro = demo_catalog["pro"]
    preview = plan_change_preview(account=account, plan=pro, when=NOW)
    # Pro's $99 base fee for the remaining 15 of 30 days: 9,900 x 15/30 = 4,950.
    # Starter has no licensed price, so no credit; metered prices are not prorated.
    assert [(line.amount, line.proration) for line in preview.lines] == [(4950, True)]
    assert "Remaining time on 1" in preview.lines[0].description
    assert (preview.total, preview.due_now) == (4950, 4950)
    assert preview.total_display == "$49.50"
    assert preview.proration_date == int(APR_16.timestamp())
    assert preview.from_plan.key == "starter"

    result = plan_change_apply(
        account=account,
        plan=pro,
        when=NOW,
        confirmed_preview_total=preview.total,
        proration_date=preview.proration_date,
    )
    invoice = stripe_client.v1.invoices.retrieve(result.invoice_id)
    assert invoice.billing_reason == "subscription_update"
    assert (invoice.total, invoice.amount_paid, invoice.status) == (4950, 4950, "paid")
    assert [line.amount for line in invoice.lines.data] == [line.amount for line in preview.lines]
    assert _price_ids(stripe_client, account) == _plan_price_ids(pro)
    assert _mirror_from_stripe(stripe_client, account) == "pro"


def test_downgrade_now_credits_the_unused_base_fee(stripe_client, demo_catalog):
    account, clock = _on(stripe_client, demo_catalog, "pro")
    test_clock_advance(client=stripe_client, clock_id=clock, to=APR_16)
    preview = plan_change_preview(account=account, plan=demo_catalog["growth"], when=NOW)
    # Unused half of Pro's $99: -9,900 x 15/30 = -4,950; Growth has no base fee.
    assert [line.amount for line in preview.lines] == [-4950]
    assert (preview.total, preview.due_now, preview.credit) == (-4950, 0, 4950)
    result = plan_change_apply(
        account=account,
        plan=demo_catalog["growth"],
        when=NOW,
        confirmed_preview_total=-4950,
        proration_date=preview.proration_date,
    )
    invoice = stripe_client.v1.invoices.retrieve(result.invoice_id)
    assert (invoice.total, invoice.amount_due, invoice.status) == (-4950, 0, "paid")
    customer = stripe_client.v1.customers.retrieve(invoice.customer)
    assert customer.balance == -4950  # credit for later invoices


def test_at_period_end_nothing_changes_until_the_boundary(stripe_client, demo_catalog):
    account, clock = _on(stripe_client, demo_catalog, "starter")
    test_clock_advance(client=stripe_client, clock_id=clock, to=APR_16)
    pro = demo_catalog["pro"]
    preview = plan_change_preview(account=account, plan=pro, when=PERIOD_END)
    assert (preview.total, preview.due_now) == (0, 0)
    assert preview.effective_at == MAY_1
    # From May 1 the renewal bills Pro's $99 base fee in advance.
    assert preview.renewal_total == 9900
    assert [line.amount for line in preview.lines] == [9900]

    result = plan_change_apply(
        account=account, plan=pro, when=PERIOD_END, confirmed_preview_total=0
    )
    assert result.schedule_id.startswith("sub_sched_")
    # dj-stripe mirrors the schedule as its subscription_schedule.* webhooks would have it.
    mirrored = SubscriptionSchedule.sync_from_stripe_data(
        stripe_client.v1.subscription_schedules.retrieve(result.schedule_id)
    )
    assert (mirrored.status, mirrored.end_behavior) == ("active", "release")
    assert _mirror_from_stripe(stripe_client, account) == "starter"
    pending = plan_change_pending(account=account)
    assert (pending.to_plan.key, pending.effective_at) == ("pro", MAY_1)
    invoices_before = len(
        stripe_client.v1.invoices.list({"customer": invoice_customer(account)}).data
    )
    assert invoices_before == 1  # only the first invoice: nothing charged now

    test_clock_advance(
        client=stripe_client, clock_id=clock, to=datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)
    )
    assert _price_ids(stripe_client, account) == _plan_price_ids(demo_catalog["starter"])
    assert _mirror_from_stripe(stripe_client, account) == "starter"

    test_clock_advance(
        client=stripe_client, clock_id=clock, to=datetime(2026, 5, 1, 1, 0, 1, tzinfo=UTC)
    )
    assert _price_ids(stripe_client, account) == _plan_price_ids(pro)
    assert _mirror_from_stripe(stripe_client, account) == "pro"
    renewal = next(
        i
        for i in stripe_client.v1.invoices.list({"customer": invoice_customer(account)}).data
        if i.billing_reason == "subscription_cycle"
    )
    # Pro's base fee for May in advance (9,900) + April's Starter API calls in arrears
    # (none reported: 0) = 9,900.
    assert (renewal.total, renewal.status) == (9900, "paid")
    assert plan_change_pending(account=account) is None


def invoice_customer(account) -> str:
    return account.djstripe_customers.get().id


def test_refusals(stripe_client, demo_catalog):
    account, clock = _on(stripe_client, demo_catalog, "starter")
    with pytest.raises(PlanChangeError) as caught:
        plan_change_preview(account=account, plan=demo_catalog["starter"], when=NOW)
    assert (caught.value.code, caught.value.field) == ("current_plan", "plan")
    with pytest.raises(PlanChangeError) as caught:
        plan_change_preview(account=account, plan=demo_catalog["pro"], when="tomorrow")
    assert (caught.value.code, caught.value.field) == ("invalid_when", "when")
    # Bulk has no kwd prices: not offered to an account billed in KWD.
    kwd, _ = _on_kwd(stripe_client, demo_catalog)
    with pytest.raises(PlanChangeError) as caught:
        plan_change_preview(account=kwd, plan=demo_catalog["bulk"], when=NOW)
    assert (caught.value.code, caught.value.field) == ("plan_not_available", "plan")
    # A confirmation whose amount no longer matches Stripe's is refused.
    test_clock_advance(client=stripe_client, clock_id=clock, to=APR_16)
    preview = plan_change_preview(account=account, plan=demo_catalog["pro"], when=NOW)
    with pytest.raises(PlanChangeError) as caught:
        plan_change_apply(
            account=account,
            plan=demo_catalog["pro"],
            when=NOW,
            confirmed_preview_total=preview.total - 1,
            proration_date=preview.proration_date,
        )
    assert caught.value.code == "preview_changed"
    with pytest.raises(PlanChangeError) as caught:
        plan_change_apply(
            account=account, plan=demo_catalog["pro"], when=NOW, confirmed_preview_total=4950
        )
    assert caught.value.code == "preview_required"
    assert _price_ids(stripe_client, account) == _plan_price_ids(demo_catalog["starter"])


def _on_kwd(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(APR_1.timestamp())}
    )
    account = account_create(name="Kuwait Co", billing_email="k@example.com", currency="kwd")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    return account, clock.id


def test_an_old_preview_is_not_applied(stripe_client, demo_catalog):
    account, clock = _on(stripe_client, demo_catalog, "starter")
    test_clock_advance(client=stripe_client, clock_id=clock, to=APR_16)
    preview = plan_change_preview(account=account, plan=demo_catalog["pro"], when=NOW)
    test_clock_advance(
        client=stripe_client, clock_id=clock, to=datetime(2026, 4, 16, 0, 15, 1, tzinfo=UTC)
    )
    with pytest.raises(PlanChangeError) as caught:
        plan_change_apply(
            account=account,
            plan=demo_catalog["pro"],
            when=NOW,
            confirmed_preview_total=preview.total,
            proration_date=preview.proration_date,
        )
    assert caught.value.code == "preview_expired"


def test_canceled_or_ending_subscription_is_refused(stripe_client, demo_catalog):
    account, _ = _on(stripe_client, demo_catalog, "starter")
    subscription_cancel_at_period_end(account=account)
    with pytest.raises(PlanChangeError) as caught:
        plan_change_preview(account=account, plan=demo_catalog["pro"], when=NOW)
    assert caught.value.code == "subscription_ending"
    sub = Subscription.objects.get(customer__subscriber=account)
    Subscription.sync_from_stripe_data(stripe_client.v1.subscriptions.cancel(sub.id))
    with pytest.raises(PlanChangeError) as caught:
        plan_change_preview(account=account, plan=demo_catalog["pro"], when=NOW)
    assert caught.value.code == "subscription_canceled"
