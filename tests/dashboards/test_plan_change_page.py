"""The plan change page (dashboards.plan_change_views): who may use it, the preview with
Stripe's proration lines and what is due now, the POST-only confirmation with CSRF, and
the "waiting for Stripe" region that polls until the mirror shows the new plan.

The account is on Starter from 2026-04-01 (a test clock at Apr 16 00:00: 15 of April's
30 days left), so moving to Pro now charges $99.00 x 15/30 = $49.50."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from djstripe.models import Subscription

from billing.mirror.subscriptions import subscription_state_for_account
from billing.models import Membership
from billing.services.accounts import account_create
from billing.services.subscriptions import subscription_create
from billing.services.test_clocks import test_clock_advance
from tests.factories import make_user

pytestmark = pytest.mark.django_db

APR_1 = datetime(2026, 4, 1, tzinfo=UTC)
APR_16 = datetime(2026, 4, 16, tzinfo=UTC)
PAGE = reverse("dashboards:plan_change")
PREVIEW = reverse("dashboards:plan_change_preview")
APPLY = reverse("dashboards:plan_change_apply")
STATUS = reverse("dashboards:plan_change_status")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def starter(stripe_client, demo_catalog):
    clock = stripe_client.v1.test_helpers.test_clocks.create(
        {"frozen_time": int(APR_1.timestamp())}
    )
    account = account_create(name="Initech", billing_email="ap@initech.example")
    subscription_create(account=account, plan=demo_catalog["starter"], test_clock=clock.id)
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=APR_16)
    return account


# What each role may do: (page, preview, apply, status) status codes.
ROLES = [
    (Membership.Role.OWNER, 200, 200),
    (Membership.Role.BILLING, 200, 200),
    (Membership.Role.MEMBER, 403, 403),  # viewers
]


@pytest.mark.parametrize(("role", "page", "preview"), ROLES)
def test_only_owners_and_billing_members_change_the_plan(client, starter, role, page, preview):
    client.force_login(make_user(starter, f"user-{role}", role))
    response = client.get(PAGE)
    assert response.status_code == page
    if page == 200:
        assert 'data-testid="plan-form"' in response.content.decode()
    assert client.get(PREVIEW, {"plan": "pro", "when": "now"}).status_code == preview
    if role == Membership.Role.MEMBER:
        posted = client.post(APPLY, {"plan": "pro", "when": "now", "total": "4950"})
        assert posted.status_code == 403
        assert client.get(STATUS, {"plan": "pro", "when": "now"}).status_code == 403
        assert subscription_state_for_account(account=starter).plan.key == "starter"


def test_apply_is_post_only_with_csrf(starter):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(starter, "owner"))
    assert client.get(APPLY, {"plan": "pro", "when": "now"}).status_code == 405
    data = {
        "plan": "pro",
        "when": "now",
        "total": "4950",
        "proration_date": str(APR_16.timestamp()),
    }
    assert client.post(APPLY, data).status_code == 403  # no CSRF token


def test_preview_confirm_and_wait_for_the_webhook(stripe_client, starter):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(starter, "owner"))
    page = client.get(PAGE).content.decode()
    assert "Initech is on <strong>Starter</strong>" in page
    response = client.get(PREVIEW, {"plan": "pro", "when": "now"}, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the partial only
    # $99.00 x 15/30 = $49.50 for the rest of April; Starter has no base fee to credit.
    assert "Remaining time on 1" in html and "$49.50" in html
    assert 'data-testid="plan-due-now">Due now: <strong>$49.50</strong>' in html
    assert f'name="proration_date" value="{int(APR_16.timestamp())}"' in html
    assert 'name="total" value="4950"' in html

    token = client.cookies["csrftoken"].value
    data = {
        "plan": "pro",
        "when": "now",
        "total": "4950",
        "proration_date": str(int(APR_16.timestamp())),
    }
    response = client.post(APPLY, data, headers={**HTMX, "X-CSRFToken": token})
    assert response.status_code == 200
    assert 'data-testid="plan-status-waiting"' in response.content.decode()
    sub = Subscription.objects.get(customer__subscriber=starter)
    invoice = stripe_client.v1.invoices.retrieve(
        stripe_client.v1.subscriptions.retrieve(sub.id).latest_invoice
    )
    assert (invoice.billing_reason, invoice.total, invoice.status) == (
        "subscription_update",
        4950,
        "paid",
    )

    # Until the webhook reaches dj-stripe, the region keeps polling.
    polled = client.get(STATUS, {"plan": "pro", "when": "now"}, headers=HTMX)
    assert polled.status_code == 200
    assert 'hx-trigger="every 2s"' in polled.content.decode()
    # customer.subscription.updated: dj-stripe syncs the subscription.
    Subscription.sync_from_stripe_data(stripe_client.v1.subscriptions.retrieve(sub.id))
    done = client.get(STATUS, {"plan": "pro", "when": "now"}, headers=HTMX)
    assert done.status_code == 286  # htmx: stop polling
    html = done.content.decode()
    assert "Done: you are on <strong>Pro</strong> now." in html and "hx-trigger" not in html


def test_period_end_shows_nothing_due_and_the_pending_change(stripe_client, starter):
    client = Client()
    client.force_login(make_user(starter, "biller", Membership.Role.BILLING))
    html = client.get(PREVIEW, {"plan": "pro", "when": "period_end"}).content.decode()
    assert "Due now: <strong>$0.00</strong>" in html
    assert "takes effect on May 1, 2026" in html and "$99.00" in html
    response = client.post(APPLY, {"plan": "pro", "when": "period_end", "total": "0"})
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}?waiting=pro&when=period_end"
    sub = Subscription.objects.get(customer__subscriber=starter)
    Subscription.sync_from_stripe_data(stripe_client.v1.subscriptions.retrieve(sub.id))
    done = client.get(STATUS, {"plan": "pro", "when": "period_end"}, headers=HTMX)
    assert done.status_code == 286
    page = client.get(PAGE).content.decode()
    assert "Switching to <strong>Pro</strong> on May 1, 2026" in page
    assert "Initech is on <strong>Starter</strong>" in page


def test_refusals_are_422_with_their_code(starter):
    client = Client()
    client.force_login(make_user(starter, "owner"))
    response = client.get(PREVIEW, {"plan": "starter", "when": "now"}, headers=HTMX)
    assert response.status_code == 422
    assert 'data-code="current_plan"' in response.content.decode()
    response = client.post(APPLY, {"plan": "pro", "when": "now", "total": "1"})
    assert response.status_code == 422
    assert 'data-code="preview_required"' in response.content.decode()


def test_another_accounts_page_is_a_404_and_staff_only_look(starter, demo_catalog):
    other = account_create(name="Globex", billing_email="g@globex.example")
    client = Client()
    client.force_login(make_user(other, "globex-owner"))
    assert client.get(PAGE, {"account": starter.pk}).status_code == 404
    staff = get_user_model().objects.create_user("support", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(content_type__app_label="billing", codename="view_account")
    )
    client.force_login(get_user_model().objects.get(pk=staff.pk))
    page = client.get(PAGE, {"account": starter.pk})
    assert page.status_code == 200 and 'data-testid="plan-form"' not in page.content.decode()
    preview = client.get(PREVIEW, {"account": starter.pk, "plan": "pro", "when": "now"})
    assert preview.status_code == 403
