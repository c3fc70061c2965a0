"""Credit grants in admin: staff type amounts in major units of the account's currency
(converted by billing.money.major_to_minor), the form goes through the credit services
and shows their errors on the field at fault, and the Expire, Void, Retry and Sync
actions call the services. Every amount is worked by hand in a comment."""

from datetime import UTC, datetime, timedelta

import pytest
import stripe

from billing.models import Account, CreditBalanceTransaction, CreditGrant, PlanPrice
from billing.services.accounts import account_ensure_stripe_customer
from billing.services.credits import credit_grant_create

pytestmark = pytest.mark.django_db(transaction=True)
ADD = "/admin/billing/creditgrant/add/"
LIST = "/admin/billing/creditgrant/"
Status = CreditGrant.Status


def _account(name: str, currency: str = "usd") -> Account:
    account = Account.objects.create(name=name, billing_email="a@x.test", currency=currency)
    account_ensure_stripe_customer(account=account, payment_method="pm_card_visa")
    return account


@pytest.fixture
def usd_account(stripe_emulator):
    return _account("Dollar Co")


@pytest.fixture
def jpy_account(stripe_emulator):
    return _account("Yen KK", "jpy")


def _form(account, **changes) -> dict:
    data = {"account": account.pk, "category": "promotional", "amount": "250.50",
            "purchase_amount": "", "name": "Goodwill credit", "priority": "50",
            "effective_at_0": "", "effective_at_1": "",
            "expires_at_0": "", "expires_at_1": ""}  # fmt: skip
    data.update(changes)
    return data


def test_add_form_takes_major_units_in_the_accounts_currency(
    admin_client, admin_user, stripe_client, usd_account, jpy_account
):
    response = admin_client.post(ADD, _form(usd_account))
    assert response.status_code == 302, response.context["adminform"].form.errors
    grant = CreditGrant.objects.get(account=usd_account)
    # "250.50" dollars = 250.50 × 100 = 25,050 cents.
    assert (grant.amount, grant.currency, grant.status) == (25_050, "usd", Status.ACTIVE)
    assert (grant.category, grant.purchase_amount, grant.created_by) == (
        "promotional", None, admin_user,
    )  # fmt: skip
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    assert (remote.amount.monetary.value, remote.amount.monetary.currency) == (25_050, "usd")

    response = admin_client.post(
        ADD,
        _form(jpy_account, amount="1234", name="Welcome", priority="5",
              expires_at_0="2099-01-01", expires_at_1="00:00:00"),
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    yen = CreditGrant.objects.get(account=jpy_account)
    # "1234" yen: JPY has no minor unit, so 1,234 (not 123,400).
    assert (yen.amount, yen.currency, yen.priority) == (1_234, "jpy", 5)
    assert yen.expires_at == datetime(2099, 1, 1, tzinfo=UTC)
    remote = stripe_client.v1.billing.credit_grants.retrieve(yen.stripe_id)
    assert (remote.amount.monetary.value, remote.amount.monetary.currency) == (1_234, "jpy")
    assert remote.expires_at == int(datetime(2099, 1, 1, tzinfo=UTC).timestamp())

    listing = admin_client.get(LIST).content.decode()
    # Amount and remaining, each in its grant's currency.
    assert listing.count("$250.50") == 2 and listing.count("¥1,234") == 2
    page = admin_client.get(f"{LIST}{grant.pk}/change/").content.decode()
    assert "free (promotional)" in page and grant.stripe_id in page


def test_errors_are_shown_on_the_field_and_nothing_is_written(
    admin_client, stripe_client, usd_account, jpy_account
):
    bare = Account.objects.create(name="No Stripe", billing_email="n@x.test")
    cases = [
        (usd_account, {"amount": "250.505"}, "amount", "USD has 2 decimal places"),
        (jpy_account, {"amount": "12.5"}, "amount", "JPY has 0 decimal places"),
        (usd_account, {"amount": "0"}, "amount", "above 0"),
        (usd_account, {"amount": "10000000000"}, "amount", "below 1,000,000,000,000"),
        (usd_account, {"priority": "101"}, "priority", "0 (first) to 100 (last)"),
        (usd_account, {"purchase_amount": "10"}, "purchase_amount", "Promotional credits are free"),
        (usd_account, {"effective_at_0": "2099-02-01", "effective_at_1": "00:00:00",
                       "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"},
         "expires_at", "after the date the credits take effect"),
        (usd_account, {"price_ids": ["price_nope"]}, "price_ids", "not one of the available"),
        (bare, {}, "account", "has no Stripe customer"),
    ]  # fmt: skip
    for account, changes, field, message in cases:
        response = admin_client.post(ADD, _form(account, **changes))
        assert response.status_code == 200, changes
        errors = response.context["adminform"].form.errors
        assert message in " ".join(errors.get(field, [])), (changes, errors)
    assert not CreditGrant.objects.exists()
    for account in (usd_account, jpy_account):
        customer = account.djstripe_customers.get().id
        assert stripe_client.v1.billing.credit_grants.list({"customer": customer}).data == []


def _action(admin_client, action: str, *grants):
    return admin_client.post(
        LIST, {"action": action, "_selected_action": [g.pk for g in grants]}, follow=True
    )


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_actions_expire_void_sync_and_retry(admin_client, stripe_client, usd_account, monkeypatch):
    keep = credit_grant_create(
        account=usd_account, name="Keep", category="promotional", amount=1_000
    )
    drop = credit_grant_create(
        account=usd_account, name="Drop", category="promotional", amount=2_000
    )
    response = _action(admin_client, "void", drop)
    assert _messages(response) == [f"Drop (#{drop.pk}): voided."]
    drop.refresh_from_db()
    assert drop.status == Status.VOIDED
    # Voiding twice is refused by the service, shown as a message.
    response = _action(admin_client, "void", drop)
    assert _messages(response) == [f"Drop (#{drop.pk}): Drop is voided."]

    response = _action(admin_client, "expire_now", keep)
    assert _messages(response) == [f"Keep (#{keep.pk}): expired."]
    keep.refresh_from_db()
    assert keep.expires_at <= datetime.now(UTC)

    # Void reads the grant's transactions first, and expiring queues a sync: both are
    # mirrored already. Keep: granted 1,000 then expired 1,000; Drop: granted 2,000 then
    # voided 2,000.
    assert sorted(
        CreditBalanceTransaction.objects.values_list("grant__name", "kind", "amount")
    ) == [
        ("Drop", "credits_granted", 2_000), ("Drop", "credits_voided", 2_000),
        ("Keep", "credits_expired", 1_000), ("Keep", "credits_granted", 1_000),
    ]  # fmt: skip
    response = _action(admin_client, "sync_transactions", keep, drop)
    assert _messages(response) == ["Dollar Co: 0 new credit transaction(s)."]
    page = admin_client.get(f"{LIST}{keep.pk}/change/").content.decode()
    # The $10.00 grant expired unused: +$10.00 granted, -$10.00 expired, $0.00 remaining.
    assert "+$10.00" in page and "-$10.00" in page and "credits_expired" in page
    listing = admin_client.get(LIST).content.decode()
    assert "Expired" in listing and "Voided" in listing

    from stripe.billing._credit_grant_service import CreditGrantService

    real = CreditGrantService.create
    refusals = [stripe.InvalidRequestError("No such price.", param="applicability_config")]

    def create(self, params=None, options=None):
        if refusals:
            raise refusals.pop()
        return real(self, params, options)

    monkeypatch.setattr(CreditGrantService, "create", create)
    failed = credit_grant_create(
        account=usd_account, name="Flaky", category="promotional", amount=300
    )
    failed.refresh_from_db()
    assert (failed.status, failed.last_error) == (Status.FAILED, "No such price.")
    assert "Failed (No such price.)" in admin_client.get(LIST).content.decode()
    response = _action(admin_client, "retry", failed)
    assert _messages(response) == [f"Flaky (#{failed.pk}): active."]
    failed.refresh_from_db()
    assert failed.status == Status.ACTIVE and failed.stripe_id


def test_grants_are_not_edited_or_deleted(admin_client, usd_account):
    grant = credit_grant_create(
        account=usd_account, name="Fixed", category="promotional", amount=500,
        expires_at=datetime.now(UTC) + timedelta(days=10),
    )  # fmt: skip
    page = admin_client.get(f"{LIST}{grant.pk}/change/")
    assert page.status_code == 200
    assert 'name="amount"' not in page.content.decode()
    assert admin_client.get(f"{LIST}{grant.pk}/delete/").status_code == 403


def test_prices_are_the_subscribed_plans_metered_prices(
    admin_client, stripe_client, demo_catalog, other_account
):
    """Globex is on Starter (metered API calls): Pro's API-calls price is refused, its
    own is sent to Stripe as the grant's scope."""
    starter = PlanPrice.objects.get(lookup_key="starter_api_calls").stripe_price_id
    pro = PlanPrice.objects.get(lookup_key="pro_api_calls").stripe_price_id
    response = admin_client.post(ADD, _form(other_account, price_ids=[pro]))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["price_ids"]
    assert "Not a metered price of Globex's plan (Starter)" in " ".join(errors)
    assert not CreditGrant.objects.exists()
    response = admin_client.post(ADD, _form(other_account, price_ids=[starter], amount="5"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    grant = CreditGrant.objects.get()
    # "5" dollars = 500 cents, for Starter's API calls only.
    assert (grant.amount, grant.price_ids, grant.status) == (500, [starter], Status.ACTIVE)
    remote = stripe_client.v1.billing.credit_grants.retrieve(grant.stripe_id)
    assert [p.id for p in remote.applicability_config.scope.prices] == [starter]
