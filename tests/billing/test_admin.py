"""Staff admin against the emulator: accounts with the invoice preview, meters pushed to
Stripe on save, plans with their mirrored prices, and the sync from Stripe."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from djstripe.models import Customer, Invoice, Price, Product, Subscription

from billing.models import Account, Membership, Meter, PlanPrice
from billing.services.accounts import membership_add
from billing.services.subscriptions import subscription_create
from stripe_emulator.testing import free_port


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("staff", "staff@meterdesk.test", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def pro_account(demo_catalog, stripe_client):
    """A Pro account with an owner, 12,345 API calls and 3 seats this period."""
    account = Account.objects.create(name="Acme", billing_email="billing@acme.test")
    owner = get_user_model().objects.create_user("ada", "ada@acme.test", "pw")
    membership_add(account=account, user=owner, role=Membership.Role.OWNER)
    subscription = subscription_create(account=account, plan=demo_catalog["pro"])
    customer = subscription.customer_id
    for event_name, value in (("api_calls", 12_345), ("seats", 3)):
        stripe_client.v1.billing.meter_events.create(
            {
                "event_name": event_name,
                "payload": {"stripe_customer_id": customer, "value": str(value)},
            }
        )
    return account


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def _row(page: str, name: str) -> str:
    """The changelist row (one ``<tr>``) that mentions ``name``."""
    return re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{re.escape(name)}(?:(?!</tr>).)*</tr>", page)[0]


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- accounts -----------------------------------------------------------------------


@pytest.mark.django_db
def test_account_list_shows_customer_plan_and_filters_by_status(staff_client, pro_account):
    Account.objects.create(name="Late Payer", billing_email="x@late.test", status="past_due")
    url = reverse("admin:billing_account_changelist")

    page = _text(staff_client.get(url))
    customer = Customer.objects.get(subscriber=pro_account)
    assert customer.id in page
    row = _row(page, "Acme")
    assert ">Pro<" in row and "Active" in row and customer.id in row
    assert "Sync everything from Stripe" in page

    past_due = _text(staff_client.get(url, {"status__exact": "past_due"}))
    assert "Late Payer" in past_due
    assert "Acme" not in past_due


@pytest.mark.django_db
def test_account_page_shows_members_stripe_side_and_both_preview_totals(staff_client, pro_account):
    response = staff_client.get(reverse("admin:billing_account_change", args=[pro_account.pk]))
    page = _text(response)
    preview = response.context["invoice_preview"]

    # 9,900 base + (12,345 - 10,000) x 0.2 = 469 + 3 seats x 1,000 = 3,000 = 13,369 cents.
    assert preview.stripe_total == preview.local_total == 13_369
    assert re.search(r'data-total="stripe">\$133\.69<', page)
    assert re.search(r'data-total="local">\$133\.69<', page)
    assert re.search(r'data-total="difference">\$0\.00<', page)
    assert "This period&#x27;s invoice preview" in page or "This period's invoice preview" in page
    # Lines on both sides: the overage line is 4.69 dollars on each.
    assert page.count("$4.69") == 2
    assert page.count(">12,345<") == 2  # the API calls line's quantity, on each side
    # Stripe customer, plan, period and the owner in the members inline.
    assert Customer.objects.get(subscriber=pro_account).id in page
    assert "Current plan" in page and ">Pro<" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d \u2013 \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert 'name="memberships-0-role"' in page
    assert re.search(r'<option value="owner" selected>Owner</option>', page)


@pytest.mark.django_db
def test_account_page_shows_the_error_when_stripe_is_unreachable(
    staff_client, pro_account, settings
):
    settings.STRIPE_API_HOST = f"http://127.0.0.1:{free_port()}"  # a closed port
    response = staff_client.get(reverse("admin:billing_account_change", args=[pro_account.pk]))
    assert response.status_code == 200
    page = _text(response)
    assert "Stripe could not be reached" in page
    assert 'data-total="stripe"' not in page
    # The rest of the page still works from the local mirror.
    assert Customer.objects.get(subscriber=pro_account).id in page


# --- meters -------------------------------------------------------------------------


def _meter_form(**overrides) -> dict:
    data = {
        "event_name": "storage_gb_hours",
        "display_name": "Storage",
        "unit_label": "GB-hour",
        "aggregation": "count",
        "customer_payload_key": "stripe_customer_id",
        "value_payload_key": "value",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_creating_a_meter_in_admin_creates_it_in_stripe(staff_client, stripe_client):
    response = staff_client.post(reverse("admin:billing_meter_add"), _meter_form(), follow=True)
    meter = Meter.objects.get(event_name="storage_gb_hours")
    remote = {
        m.event_name: m
        for m in stripe_client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()
    }
    assert "storage_gb_hours" in remote
    assert remote["storage_gb_hours"].id == meter.stripe_id
    assert remote["storage_gb_hours"].display_name == "Storage"
    # A count meter is created with formula sum: counts are sent as values.
    assert remote["storage_gb_hours"].default_aggregation.formula == "sum"
    assert any(meter.stripe_id in m for m in _messages(response))

    # Renaming it in admin renames it in Stripe; the event name is now read-only.
    change = reverse("admin:billing_meter_change", args=[meter.pk])
    assert 'name="event_name"' not in staff_client.get(change).content.decode()
    staff_client.post(change, _meter_form(display_name="Storage (GB-hours)"))
    assert stripe_client.v1.billing.meters.retrieve(meter.stripe_id).display_name == (
        "Storage (GB-hours)"
    )


@pytest.mark.django_db
def test_meter_that_stripe_refuses_shows_an_admin_error(staff_client, stripe_client):
    # Already in Stripe as a ``last`` meter: Stripe cannot change a formula.
    stripe_client.v1.billing.meters.create(
        {
            "display_name": "Seats elsewhere",
            "event_name": "seats_elsewhere",
            "default_aggregation": {"formula": "last"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        }
    )
    response = staff_client.post(
        reverse("admin:billing_meter_add"),
        _meter_form(event_name="seats_elsewhere", aggregation="sum"),
        follow=True,
    )
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1
    assert "Stripe's formula is 'last'" in errors[0]
    assert Meter.objects.get(event_name="seats_elsewhere").stripe_id == ""


@pytest.mark.django_db
def test_meter_saved_while_stripe_is_unreachable_says_so(staff_client, settings, stripe_emulator):
    settings.STRIPE_API_HOST = f"http://127.0.0.1:{free_port()}"
    response = staff_client.post(reverse("admin:billing_meter_add"), _meter_form(), follow=True)
    assert response.status_code == 200
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1
    assert "saved in Meterdesk only, not in Stripe" in errors[0]
    assert "Stripe could not be reached" in errors[0]
    assert Meter.objects.get(event_name="storage_gb_hours").stripe_id == ""


# --- plans --------------------------------------------------------------------------


@pytest.mark.django_db
def test_plan_page_shows_prices_from_the_mirror(staff_client, demo_catalog):
    pro = demo_catalog["pro"]
    page = _text(staff_client.get(reverse("admin:billing_plan_change", args=[pro.pk])))
    for price in PlanPrice.objects.filter(plan=pro):
        assert price.stripe_price_id in page
    # pro_api_calls: graduated, first 10,000 free, then 0.2 cents = 0.002 USD per call.
    assert "graduated tiers, metered, per month" in page
    assert "1\u201310,000: free" in page
    assert "10,001+: 0.002 USD per unit" in page
    assert ">10,000<" in page  # included units
    # pro_base: 9,900 cents per unit, licensed.
    assert "$99.00 per unit" in page
    assert "per unit, licensed, per month" in page


# --- sync -----------------------------------------------------------------------------


def _create_directly_in_stripe(client) -> dict:
    """A customer on a new product's monthly price, made in Stripe behind Meterdesk's back."""
    customer = client.v1.customers.create(
        {
            "name": "Made in Stripe",
            "email": "direct@stripe.test",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    product = client.v1.products.create({"name": "Side deal"})
    price = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 2_500,
            "recurring": {"interval": "month"},
        }
    )
    subscription = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id, "quantity": 2}]}
    )
    return {
        "customer": customer.id,
        "product": product.id,
        "price": price.id,
        "subscription": subscription.id,
        "invoice": subscription.latest_invoice,
    }


@pytest.mark.django_db
def test_sync_action_mirrors_objects_created_directly_in_stripe(staff_client, stripe_client):
    made = _create_directly_in_stripe(stripe_client)
    # A meter known locally but created in Stripe by someone else: sync adopts its id.
    meter = Meter.objects.create(event_name="gpu_seconds", display_name="GPU", aggregation="sum")
    remote_meter = stripe_client.v1.billing.meters.create(
        {
            "display_name": "GPU",
            "event_name": "gpu_seconds",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        }
    )
    account = Account.objects.create(name="Any", billing_email="any@x.test")
    assert not Customer.objects.filter(id=made["customer"]).exists()

    response = staff_client.post(
        reverse("admin:billing_account_changelist"),
        {"action": "sync_everything_from_stripe", "_selected_action": [account.pk]},
        follow=True,
    )

    assert Customer.objects.get(id=made["customer"]).stripe_data["name"] == "Made in Stripe"
    assert Product.objects.get(id=made["product"]).name == "Side deal"
    assert Price.objects.get(id=made["price"]).stripe_data["unit_amount"] == 2_500
    mirrored = Subscription.objects.get(id=made["subscription"])
    assert mirrored.stripe_data["items"]["data"][0]["quantity"] == 2
    # The subscription's first invoice: 2 x $25.00 = 5,000 cents, in advance.
    assert Invoice.objects.get(id=made["invoice"]).stripe_data["total"] == 5_000
    meter.refresh_from_db()
    assert meter.stripe_id == remote_meter.id
    success = [str(m) for m in response.context["messages"] if m.level_tag == "success"]
    assert len(success) == 1
    assert "1 customers" in success[0] and "1 subscriptions" in success[0]


@pytest.mark.django_db
def test_sync_button_on_the_meter_list_and_its_failure_message(
    staff_client, stripe_client, settings
):
    made = _create_directly_in_stripe(stripe_client)
    changelist = reverse("admin:billing_meter_changelist")
    page = staff_client.get(changelist).content.decode()
    assert f'action="{reverse("admin:billing_sync")}"' in page

    # GET does nothing.
    assert staff_client.get(reverse("admin:billing_sync")).status_code == 405
    response = staff_client.post(reverse("admin:billing_sync"), {"next": changelist})
    assert response.status_code == 302 and response.url == changelist
    assert Product.objects.filter(id=made["product"]).exists()

    settings.STRIPE_API_HOST = f"http://127.0.0.1:{free_port()}"
    response = staff_client.post(reverse("admin:billing_sync"), {"next": changelist}, follow=True)
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert errors and errors[0].startswith("Sync from Stripe failed. Stripe could not be reached")


@pytest.mark.django_db
def test_sync_view_needs_staff_permission(client, db):
    user = get_user_model().objects.create_user("plain", "p@x.test", "pw", is_staff=True)
    client.force_login(user)
    assert client.post(reverse("admin:billing_sync")).status_code == 403


@pytest.mark.django_db
def test_subscribe_to_plan_action_subscribes_then_changes_plan(
    staff_client, demo_catalog, stripe_client
):
    account = Account.objects.create(name="Beta", billing_email="billing@beta.test")
    changelist = reverse("admin:billing_account_changelist")
    action = {"action": "subscribe_to_plan", "_selected_action": [account.pk]}

    # First the intermediate page: the catalog's plans to choose from.
    page = _text(staff_client.post(changelist, action))
    assert "Subscribe to plan" in page
    for plan in demo_catalog.values():
        assert f'<option value="{plan.pk}">{plan.name}</option>' in page

    pro = demo_catalog["pro"]
    response = staff_client.post(
        changelist, {**action, "plan": pro.pk, "apply": "yes"}, follow=True
    )
    success = [str(m) for m in response.context["messages"] if m.level_tag == "success"]
    assert len(success) == 1 and success[0].startswith("Beta subscribed to Pro (sub_")
    customer = Customer.objects.get(subscriber=account)
    remote = stripe_client.v1.subscriptions.list({"customer": customer.id}).data
    assert len(remote) == 1
    pro_prices = set(PlanPrice.objects.filter(plan=pro).values_list("stripe_price_id", flat=True))
    assert {item.price.id for item in remote[0]["items"].data} == pro_prices
    row = _row(_text(staff_client.get(changelist)), "Beta")
    assert ">Pro<" in row

    starter = demo_catalog["starter"]
    response = staff_client.post(
        changelist, {**action, "plan": starter.pk, "apply": "yes"}, follow=True
    )
    success = [str(m) for m in response.context["messages"] if m.level_tag == "success"]
    assert len(success) == 1 and success[0].startswith("Beta moved to Starter")
    remote = stripe_client.v1.subscriptions.retrieve(remote[0].id)
    assert [item.price.id for item in remote["items"].data] == [
        PlanPrice.objects.get(lookup_key="starter_api_calls").stripe_price_id
    ]
    row = _row(_text(staff_client.get(changelist)), "Beta")
    assert ">Starter<" in row

    # Applying without choosing a plan asks again instead of failing.
    page = _text(staff_client.post(changelist, {**action, "plan": "x", "apply": "yes"}))
    assert "Choose a plan." in page


def test_admin_index_links_the_revenue_report(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/revenue/"' in html
    assert "Revenue recognition" in html


@pytest.mark.django_db
def test_subscribe_picker_offers_only_plans_priced_in_the_accounts_currency(
    staff_client, demo_catalog
):
    # demo.toml prices Scale also in jpy, Starter also in kwd; everything in usd.
    tokyo = Account.objects.create(name="Tokyo", billing_email="b@tokyo.test", currency="jpy")
    changelist = reverse("admin:billing_account_changelist")
    page = _text(
        staff_client.post(
            changelist, {"action": "subscribe_to_plan", "_selected_action": [tokyo.pk]}
        )
    )
    offered = {
        plan.key
        for plan in demo_catalog.values()
        if f'<option value="{plan.pk}">{plan.name}</option>' in page
    }
    assert offered == {"scale"}


@pytest.mark.django_db
def test_account_currency_is_fixed_once_subscribed(staff_client, pro_account, demo_catalog):
    fresh = Account.objects.create(name="Fresh", billing_email="b@fresh.test")
    change = _text(staff_client.get(reverse("admin:billing_account_change", args=[fresh.pk])))
    assert 'name="currency"' in change  # editable before any subscription
    change = _text(staff_client.get(reverse("admin:billing_account_change", args=[pro_account.pk])))
    assert 'name="currency"' not in change  # read-only: Stripe cannot change it
