"""Credit grants through the services and the emulator: promotional grants made in
Stripe after the commit, refused input, retries that never grant twice, void and expire,
and the mirror of Stripe's credit balance transactions after an invoice is finalized
with credits.

Growth plan (billing/catalog/demo.toml), data transfer on volume tiers: up to 100 GB
10¢ each + 500¢ flat; up to 1,000 GB 8¢ + 1,000¢. Every amount is in cents.
"""

from datetime import UTC, datetime, timedelta

import pytest
import stripe
import time_machine

from billing.mirror.credits import account_grants, grant_balance, grant_balances
from billing.models import Account, CreditBalanceTransaction, CreditGrant, Meter, PlanPrice
from billing.services.accounts import account_ensure_stripe_customer
from billing.services.credit_sync import credit_transactions_sync, credit_transactions_sync_all
from billing.services.credits import (
    CreditError,
    credit_grant_advance,
    credit_grant_create,
    credit_grant_expire,
    credit_grant_retry,
    credit_grant_void,
    credit_grants_advance_stale,
)
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from billing.services.webhook_endpoints import webhook_endpoint_register
from tests.conftest import wait_for
from usage.services.ingest import usage_events_ingest
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 1, 15, tzinfo=UTC)  # the subscription starts: period 15 Jan .. 15 Feb
FEB_15 = datetime(2026, 2, 15, tzinfo=UTC)
HOUR = timedelta(hours=1)
Status = CreditGrant.Status


@pytest.fixture
def customer_account(stripe_emulator, db):
    """An account with a Stripe customer (a card on file) and no subscription."""
    account = Account.objects.create(name="Credit Co", billing_email="c@x.test")
    account_ensure_stripe_customer(account=account, payment_method="pm_card_visa")
    return account


def _customer(account) -> str:
    return account.djstripe_customers.get().id


def _stripe_grants(client, account) -> list:
    return client.v1.billing.credit_grants.list({"customer": _customer(account)}).data


def test_promotional_grant_becomes_active_in_stripe_with_the_same_amount(
    stripe_client, customer_account
):
    grant = credit_grant_create(
        account=customer_account, name="Welcome credit", category="promotional", amount=2_500,
        priority=10,
    )  # fmt: skip
    grant.refresh_from_db()
    assert (grant.status, grant.last_error) == (Status.ACTIVE, "")
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    # $25.00 = 2,500 cents, as given.
    assert remote.amount.monetary.value == 2_500 and remote.amount.monetary.currency == "usd"
    assert (remote.category, remote.priority, remote.name) == ("promotional", 10, "Welcome credit")
    assert remote.applicability_config.scope.price_type == "metered"
    assert remote.metadata["meterdesk_grant"] == str(grant.pk)
    assert remote.customer == _customer(customer_account)
    # Stripe's default effective_at (its time of creation) is recorded.
    assert grant.effective_at is not None
    [balance] = grant_balances(account=customer_account)
    assert (balance.ledger_balance, balance.applied, balance.status_label) == (2_500, 0, "Active")
    spec = balance.to_spec()
    assert (spec.id, spec.balance, spec.category, spec.priority) == (
        grant.stripe_id, 2_500, "promotional", 10,
    )  # fmt: skip


def test_grant_scoped_to_prices_sends_them(stripe_client, demo_catalog, customer_account):
    api_calls = PlanPrice.objects.get(lookup_key="starter_api_calls").stripe_price_id
    grant = credit_grant_create(
        account=customer_account, name="API credit", category="promotional", amount=1_000,
        price_ids=[api_calls],
    )  # fmt: skip
    grant.refresh_from_db()
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    assert [p.id for p in remote.applicability_config.scope.prices] == [api_calls]
    assert grant_balance(grant=grant).to_spec().price_ids == frozenset({api_calls})


def _refusals(account):
    future = datetime(2099, 1, 1, tzinfo=UTC)
    base_fee = PlanPrice.objects.get(lookup_key="pro_base").stripe_price_id
    jpy_price = PlanPrice.objects.filter(currency="jpy", meter__isnull=False).first()
    cases = [
        ({"amount": 0}, "invalid_amount", "amount"),
        ({"amount": -500}, "invalid_amount", "amount"),
        ({"amount": 10**12}, "invalid_amount", "amount"),
        ({"amount": 12.5}, "invalid_amount", "amount"),
        ({"currency": "eur"}, "currency_mismatch", "currency"),
        ({"priority": 101}, "invalid_priority", "priority"),
        ({"priority": -1}, "invalid_priority", "priority"),
        ({"name": "  "}, "invalid_name", "name"),
        ({"category": "gift"}, "invalid_category", "category"),
        ({"purchase_amount": 100}, "invalid_purchase_amount", "purchase_amount"),
        ({"category": "paid", "purchase_amount": 0}, "invalid_purchase_amount", "purchase_amount"),
        ({"effective_at": future, "expires_at": future}, "expires_before_effective", "expires_at"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expires_before_effective",
         "expires_at"),
        ({"expires_at": datetime(2099, 1, 1)}, "invalid_expires_at", "expires_at"),
        ({"price_ids": ["price_nope"]}, "unknown_price", "price_ids"),
        ({"price_ids": [base_fee]}, "unknown_price", "price_ids"),  # licensed, not metered
        ({"price_ids": [f"p{i}" for i in range(21)]}, "too_many_prices", "price_ids"),
    ]  # fmt: skip
    if jpy_price is not None:  # a metered price in another currency than the account's
        cases.append(({"price_ids": [jpy_price.stripe_price_id]}, "unknown_price", "price_ids"))
    return cases


def test_refused_input_names_the_field_and_writes_nothing(
    stripe_client, demo_catalog, customer_account
):
    valid = {"account": customer_account, "name": "Credit", "category": "promotional",
             "amount": 1_000}  # fmt: skip
    for changes, code, field in _refusals(customer_account):
        with pytest.raises(CreditError) as info:
            credit_grant_create(**{**valid, **changes})
        assert (info.value.code, info.value.field) == (code, field), changes
        assert info.value.message
    no_customer = Account.objects.create(name="No Stripe", billing_email="n@x.test")
    with pytest.raises(CreditError) as info:
        credit_grant_create(**{**valid, "account": no_customer})
    assert (info.value.code, info.value.field) == ("no_stripe_customer", "account")
    assert CreditGrant.objects.count() == 0
    assert _stripe_grants(stripe_client, customer_account) == []


def test_retries_never_create_a_second_grant(stripe_client, customer_account):
    grant = credit_grant_create(
        account=customer_account, name="Once", category="promotional", amount=700
    )
    grant.refresh_from_db()
    first_id = grant.stripe_id
    # The task runs again (redelivered), staff press Retry, the periodic pass runs.
    credit_grant_advance(grant_id=grant.pk)
    credit_grant_retry(grant=grant)
    credit_grants_advance_stale(now=datetime.now(UTC) + timedelta(hours=1))
    # A worker died after Stripe made the grant but before recording it: found again by
    # its metadata, not made twice.
    CreditGrant.objects.filter(pk=grant.pk).update(status=Status.PENDING, stripe_id="")
    again = credit_grant_advance(grant_id=grant.pk)
    assert (again.status, again.stripe_id) == (Status.ACTIVE, first_id)
    assert [g.id for g in _stripe_grants(stripe_client, customer_account)] == [first_id]


def _fail_create(monkeypatch, error):
    from stripe.billing._credit_grant_service import CreditGrantService

    real = CreditGrantService.create
    calls = []

    def create(self, params=None, options=None):
        calls.append(params)
        if len(calls) == 1:
            raise error
        return real(self, params, options)

    monkeypatch.setattr(CreditGrantService, "create", create)
    return calls


def test_stripe_refusal_fails_the_grant_and_staff_retry_it(
    stripe_client, customer_account, monkeypatch
):
    calls = _fail_create(
        monkeypatch, stripe.InvalidRequestError("Customer has too many grants.", param="customer")
    )
    grant = credit_grant_create(
        account=customer_account, name="Refused", category="promotional", amount=300
    )
    grant.refresh_from_db()
    assert (grant.status, grant.stripe_id) == (Status.FAILED, "")
    assert "too many grants" in grant.last_error
    # A refusal is not retried by the periodic pass: staff retry it.
    assert credit_grants_advance_stale(now=datetime.now(UTC) + timedelta(hours=1)) == 0
    assert len(calls) == 1
    done = credit_grant_retry(grant=grant)
    assert (done.status, done.last_error) == (Status.ACTIVE, "")
    assert len(_stripe_grants(stripe_client, customer_account)) == 1


def test_unreachable_stripe_leaves_it_pending_for_the_periodic_pass(
    stripe_client, customer_account, monkeypatch
):
    _fail_create(monkeypatch, stripe.APIConnectionError("connection refused"))
    grant = credit_grant_create(
        account=customer_account, name="Later", category="promotional", amount=300
    )
    grant.refresh_from_db()
    assert grant.status == Status.PENDING and "connection refused" in grant.last_error
    # Not yet 5 minutes: left alone.
    assert credit_grants_advance_stale() == 0
    assert credit_grants_advance_stale(now=datetime.now(UTC) + timedelta(minutes=6)) == 1
    grant.refresh_from_db()
    assert (grant.status, grant.last_error) == (Status.ACTIVE, "")
    assert len(_stripe_grants(stripe_client, customer_account)) == 1


def test_void_before_use_and_expire(stripe_client, customer_account):
    unused = credit_grant_create(
        account=customer_account, name="Unused", category="promotional", amount=400
    )
    unused.refresh_from_db()
    voided = credit_grant_void(grant=unused)
    assert voided.status == Status.VOIDED and voided.voided_at is not None
    assert stripe_client.v1.billing.credit_grants.retrieve(unused.stripe_id).voided_at
    with pytest.raises(CreditError) as info:
        credit_grant_void(grant=voided)
    assert info.value.code == "not_active"

    later = credit_grant_create(
        account=customer_account, name="Ends", category="promotional", amount=900
    )
    later.refresh_from_db()
    at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    moved = credit_grant_expire(grant=later, at=at)
    assert moved.expires_at == at
    assert stripe_client.v1.billing.credit_grants.retrieve(later.stripe_id).expires_at == int(
        at.timestamp()
    )
    ended = credit_grant_expire(grant=moved)
    assert ended.expires_at <= datetime.now(UTC)
    credit_transactions_sync(account=customer_account)
    balance = grant_balance(grant=later)
    # Nothing applied: all 900 expire.
    assert (balance.ledger_balance, balance.expired_amount, balance.status_label) == (
        0, 900, "Expired",
    )  # fmt: skip
    kinds = sorted(
        CreditBalanceTransaction.objects.filter(grant=later).values_list("kind", "amount")
    )
    assert kinds == [("credits_expired", 900), ("credits_granted", 900)]
    with pytest.raises(CreditError) as info:
        credit_grant_expire(grant=ended)
    assert info.value.code == "already_expired"
    labels = [(g.name, g.status_label) for g in account_grants(account=customer_account)]
    assert labels == [("Ends", "Expired"), ("Unused", "Voided")]


def _growth(stripe_client, demo_catalog):
    """A Growth customer on a test clock at T0 + 1 h with 142 GB reported this period."""
    clock = stripe_client.v1.test_helpers.test_clocks.create({"frozen_time": int(T0.timestamp())})
    account = Account.objects.create(name="Growth Co", billing_email="g@x.test")
    subscription_create(account=account, plan=demo_catalog["growth"], test_clock=clock.id)
    cus = account.djstripe_customers.get().id
    ts = int((T0 + HOUR / 2).timestamp())
    result = usage_events_ingest(
        events=[{"event_name": "data_transfer_gb", "customer": cus, "value": 142,
                 "timestamp": ts, "identifier": "g142"}],
        now=T0 + HOUR,
    )  # fmt: skip
    assert result.rejected == []
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=T0 + HOUR)
    with time_machine.travel(T0 + HOUR, tick=True):
        usage_report_pass(now=T0 + HOUR)
    assert Meter.objects.filter(event_name="data_transfer_gb").exists()
    return clock, account, cus


@pytest.fixture
def growth(stripe_client, demo_catalog):
    return _growth(stripe_client, demo_catalog)


def test_sync_mirrors_credits_applied_at_finalization_and_void_is_refused(stripe_client, growth):
    clock, account, cus = growth
    with time_machine.travel(T0 + HOUR, tick=True):
        grant = credit_grant_create(
            account=account, name="Launch credit", category="promotional", amount=2_500
        )
    grant.refresh_from_db()
    assert grant.status == Status.ACTIVE
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)
    [invoice] = [
        i for i in stripe_client.v1.invoices.list({"customer": cus}).data
        if i.billing_reason == "subscription_cycle"
    ]  # fmt: skip
    # 142 GB, volume tier 2: 142 × 8¢ + 1,000¢ = 2,136¢; the 2,500¢ credit covers all of
    # it: total 2,136 − 2,136 = 0.
    assert (invoice.subtotal, invoice.total) == (2_136, 0)
    assert credit_transactions_sync(account=account) == 2
    assert credit_transactions_sync(account=account) == 0  # nothing new the second time
    rows = {t.kind: t for t in CreditBalanceTransaction.objects.filter(grant=grant)}
    assert (rows["credits_granted"].type, rows["credits_granted"].amount) == ("credit", 2_500)
    applied = rows["credits_applied"]
    assert (applied.type, applied.amount, applied.invoice_id) == ("debit", 2_136, invoice.id)
    assert applied.invoice_line_item_id and applied.account == account
    [balance] = grant_balances(account=account)
    # 2,500 − 2,136 = 364 left.
    assert (balance.ledger_balance, balance.applied, balance.expired_amount) == (364, 2_136, 0)
    with pytest.raises(CreditError) as info:
        credit_grant_void(grant=grant)
    # $21.36 of it was applied: refused, and nothing changed.
    assert (info.value.code, info.value.field) == ("grant_used", "grant")
    assert "$21.36" in info.value.message
    grant.refresh_from_db()
    assert grant.status == Status.ACTIVE
    assert stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id).voided_at is None
    # The periodic sync finds nothing new.
    assert credit_transactions_sync_all() == 0


def test_invoice_finalized_webhook_syncs_the_applied_credits(stripe_client, live_server, growth):
    clock, account, _cus = growth
    webhook_endpoint_register(base_url=live_server.url)
    with time_machine.travel(T0 + HOUR, tick=True):
        grant = credit_grant_create(
            account=account, name="Small credit", category="promotional", amount=1_000
        )
    assert CreditBalanceTransaction.objects.count() == 0
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)

    def applied():
        return CreditBalanceTransaction.objects.filter(grant=grant, kind="credits_applied").first()

    debit = wait_for(applied, timeout=20, what="credits_applied mirrored by the webhook")
    # 2,136¢ billed (142 GB: 142 × 8¢ + 1,000¢); the whole 1,000¢ credit applies.
    assert debit.amount == 1_000
    [balance] = grant_balances(account=account)
    assert (balance.ledger_balance, balance.applied, balance.status_label) == (0, 1_000, "Used up")


def test_voided_invoice_gives_the_credits_back(stripe_client, demo_catalog):
    clock, account, cus = _growth(stripe_client, demo_catalog)
    with time_machine.travel(T0 + HOUR, tick=True):
        grant = credit_grant_create(
            account=account, name="Credit", category="promotional", amount=1_000
        )
    # The card on file now fails, so the renewal invoice stays open (and can be voided).
    failing = stripe_client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", {"customer": cus}
    )
    stripe_client.v1.customers.update(
        cus, {"invoice_settings": {"default_payment_method": failing.id}}
    )
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=FEB_15 + 2 * HOUR)
    [invoice] = [
        i for i in stripe_client.v1.invoices.list({"customer": cus}).data
        if i.billing_reason == "subscription_cycle"
    ]  # fmt: skip
    # 2,136¢ − the 1,000¢ credit = 1,136¢ due; the card is declined, so it stays open.
    assert (invoice.status, invoice.total) == ("open", 1_136)
    credit_transactions_sync(account=account)
    assert grant_balance(grant=grant).ledger_balance == 0  # 1,000 − 1,000 applied
    stripe_client.v1.invoices.void_invoice(invoice.id)
    assert credit_transactions_sync(account=account) == 1
    back = CreditBalanceTransaction.objects.get(grant=grant, type="credit", invoice_id=invoice.id)
    assert (back.kind, back.amount) == ("credits_application_invoice_voided", 1_000)
    balance = grant_balance(grant=grant)
    # 1,000 granted − 1,000 applied + 1,000 given back = 1,000 left; none applied now.
    assert (balance.ledger_balance, balance.applied, balance.status_label) == (1_000, 0, "Active")


def _txn(grant, n: int, type_: str, kind: str, amount: int, at: datetime):
    return CreditBalanceTransaction.objects.create(
        stripe_id=f"cbtxn_{grant.pk}_{n}", grant=grant, account=grant.account, type=type_,
        kind=kind, amount=amount, currency=grant.currency, effective_at=at,
    )  # fmt: skip


def test_balances_from_the_mirrored_ledger_in_one_query(django_assert_num_queries):
    """No Stripe: rows as the sync writes them. Balances are worked by hand."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    account = Account.objects.create(name="Ledger Co", billing_email="l@x.test")
    euro = Account.objects.create(name="Euro Co", billing_email="e@x.test", currency="eur")

    def grant(name, amount, **extra):
        return CreditGrant.objects.create(
            account=extra.pop("account", account), name=name, category="promotional",
            status=extra.pop("status", Status.ACTIVE), amount=amount,
            currency=extra.pop("currency", "usd"),
            stripe_id=extra.pop("stripe_id", f"credgr_{name}"), **extra,
        )  # fmt: skip

    a = grant("a", 5_000)
    _txn(a, 1, "credit", "credits_granted", 5_000, now - timedelta(days=20))
    _txn(a, 2, "debit", "credits_applied", 1_200, now - timedelta(days=10))
    _txn(a, 3, "debit", "credits_applied", 800, now - timedelta(days=9))
    _txn(a, 4, "credit", "credits_application_invoice_voided", 800, now - timedelta(days=5))
    b = grant("b", 3_000, expires_at=now - timedelta(days=1))  # expired, not synced since
    _txn(b, 1, "debit", "credits_applied", 1_000, now - timedelta(days=3))
    grant("c", 700, effective_at=now + timedelta(days=2))
    grant("waiting", 9_000, status=Status.PENDING, stripe_id="")
    grant("other currency", 400, account=euro, currency="eur")
    grant("wrong currency", 400, currency="eur")  # (not creatable; left over)

    with django_assert_num_queries(1):
        balances = {g.name: g for g in grant_balances(account=account, now=now)}
    assert set(balances) == {"a", "b", "c"}
    # a: 5,000 − 1,200 − 800 + 800 given back = 3,800 left; applied 1,200 + 800 − 800.
    assert (balances["a"].ledger_balance, balances["a"].applied) == (3_800, 1_200)
    # b: 3,000 − 1,000 = 2,000 left at expiry: expired, 0 left.
    assert (balances["b"].ledger_balance, balances["b"].expired_amount) == (0, 2_000)
    assert (balances["b"].status_label, balances["c"].status_label) == ("Expired", "Scheduled")
    assert balances["c"].to_spec().effective_at == now + timedelta(days=2)
    with django_assert_num_queries(1):
        rows = account_grants(account=account, now=now)
    assert [r.name for r in rows] == ["wrong currency", "waiting", "c", "b", "a"]
    assert rows[1].status_label == "Being created in Stripe"


def test_broker_down_the_periodic_pass_makes_the_grant(
    stripe_client, customer_account, monkeypatch
):
    from kombu.exceptions import OperationalError

    from billing.tasks import advance_credit_grant

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr(advance_credit_grant, "apply_async", down)
    grant = credit_grant_create(
        account=customer_account, name="Queued", category="promotional", amount=600
    )
    grant.refresh_from_db()
    assert (grant.status, grant.stripe_id) == (Status.PENDING, "")  # recorded, not sent
    assert _stripe_grants(stripe_client, customer_account) == []
    monkeypatch.undo()
    assert credit_grants_advance_stale(now=datetime.now(UTC) + timedelta(minutes=6)) == 1
    grant.refresh_from_db()
    assert grant.status == Status.ACTIVE
    [remote] = _stripe_grants(stripe_client, customer_account)
    assert (remote.id, remote.amount.monetary.value) == (grant.stripe_id, 600)
