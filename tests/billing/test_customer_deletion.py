"""Issue 12: deleting the mirrored dj-stripe Customer in admin must not strand unreported
usage. The admin refuses (naming how many events and reports are pending) until the
usage reached Stripe; then the deletion goes through."""

import re

import pytest
import stripe
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from djstripe.models import Customer

from billing.admin_customers import ProtectedCustomerAdmin
from billing.customer_deletion import customer_deletion_blockers
from billing.models import Account
from billing.services.accounts import account_ensure_stripe_customer
from tests.factories import ingest
from usage.models import UsageReport
from usage.services.reporting import usage_report_pass

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("staff", "staff@meterdesk.test", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def customers(demo_catalog):
    """Two mirrored customers: ``busy`` with 5 unreported events, ``idle`` with none."""
    mirrored = []
    for i in range(2):
        account = Account.objects.create(name=f"Org {i}", billing_email=f"o{i}@x.test")
        mirrored.append(account_ensure_stripe_customer(account=account, payment_method=None))
    busy, idle = (Customer.objects.get(id=c.id) for c in mirrored)
    ingest(busy.id, "api_calls", [1] * 5, "busy")
    return busy, idle


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_delete_page_refuses_and_names_what_is_pending(staff_client, customers):
    busy, _idle = customers
    url = reverse("admin:djstripe_customer_delete", args=[busy.pk])

    page = _text(staff_client.get(url))
    assert "Cannot delete" in page
    assert (
        f"Stripe customer {busy.id} (account “Org 0”) has 5 usage event(s) not yet reported "
        "to Stripe: 5 not yet in a report, and 0 in 0 report(s) pending, sending or failed."
    ) in page

    staff_client.post(url, {"post": "yes"})  # confirming anyway deletes nothing
    assert Customer.objects.filter(pk=busy.pk).exists()


def test_reports_pending_or_failed_also_block_and_sent_usage_does_not(
    staff_client, customers, monkeypatch
):
    busy, idle = customers
    from usage.services import report_send

    def stripe_down(client, report):
        raise stripe.APIConnectionError("Stripe unreachable")

    monkeypatch.setattr(report_send, "_send", stripe_down)
    usage_report_pass()  # claimed into one report; sending failed and will retry
    report = UsageReport.objects.get()
    assert (report.status, report.event_count) == ("pending", 5)
    assert customer_deletion_blockers(customers=[busy, idle]) == [
        f"Stripe customer {busy.id} (account “Org 0”) has 5 usage event(s) not yet reported "
        "to Stripe: 0 not yet in a report, and 5 in 1 report(s) pending, sending or failed. "
        "Deleting it would strand them: let the reporting pass send them (retry or resolve "
        "failed reports in Usage reports) first."
    ]
    UsageReport.objects.update(status="failed")
    assert len(customer_deletion_blockers(customers=[busy])) == 1

    UsageReport.objects.update(status="pending", next_attempt_at=report.created_at)
    monkeypatch.undo()
    usage_report_pass()
    assert UsageReport.objects.get().status == "sent"
    assert customer_deletion_blockers(customers=[busy, idle]) == []

    url = reverse("admin:djstripe_customer_delete", args=[busy.pk])
    assert "Are you sure" in _text(staff_client.get(url))
    staff_client.post(url, {"post": "yes"})
    assert not Customer.objects.filter(pk=busy.pk).exists()


def test_the_bulk_delete_action_refuses_the_whole_selection(staff_client, customers):
    busy, idle = customers
    changelist = reverse("admin:djstripe_customer_changelist")
    data = {"action": "delete_selected", "_selected_action": [busy.pk, idle.pk]}

    page = _text(staff_client.post(changelist, data))
    assert "Cannot delete" in page and "has 5 usage event(s) not yet reported" in page
    staff_client.post(changelist, {**data, "post": "yes"})
    assert Customer.objects.filter(pk__in=[busy.pk, idle.pk]).count() == 2

    # The idle customer alone is not guarded.
    staff_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [idle.pk], "post": "yes"}
    )
    assert not Customer.objects.filter(pk=idle.pk).exists()


def test_delete_model_and_delete_queryset_check_again(customers, rf):
    from django.contrib import admin

    busy, _idle = customers
    model_admin = admin.site._registry[Customer]
    assert isinstance(model_admin, ProtectedCustomerAdmin)
    with pytest.raises(PermissionDenied, match="5 usage event"):
        model_admin.delete_model(rf.post("/"), busy)
    with pytest.raises(PermissionDenied):
        model_admin.delete_queryset(rf.post("/"), Customer.objects.filter(pk=busy.pk))
    assert Customer.objects.filter(pk=busy.pk).exists()
