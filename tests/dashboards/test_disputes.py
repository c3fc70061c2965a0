"""Disputes of an invoice line (issue 15): opened from the drill-down by owners and billing
members, resolved by staff in admin with a reply or a correction, the customer e-mailed
once the resolution commits; another account's dispute URL is a 404."""

from datetime import date, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from billing.models import Membership
from tests.dashboards.test_drilldown import RENEWED, _period, _renewal, trio_plan  # noqa: F401
from tests.factories import make_user
from usage.models import UsageCorrection, UsageDispute

pytestmark = pytest.mark.django_db

# 10 gigabyte events valued 1..5 twice: 30 GB; event 1 (2 GB) is at Sep 1 10:42.
SMALL = {"data_transfer_gb": 10}


@pytest.fixture
def period(stripe_client, trio_plan):  # noqa: F811
    made = _period(stripe_client, trio_plan, {"alpha": SMALL, "bravo": SMALL})
    invoice = _renewal(made["bravo"])
    [line] = invoice.usage_lines
    return made, invoice, line


def _dispute_url(invoice, line):
    return reverse("dashboards:dispute_open", args=[invoice.id, line.id])


def _line_url(invoice, line):
    return reverse("dashboards:drilldown_line", args=[invoice.id, line.id])


def _open(account, invoice, line, message="Sep 1 10:00 was a duplicate upload"):
    return UsageDispute.objects.create(
        account=account, meter=line.meter, invoice_id=invoice.id, line_id=line.id,
        day=date(2026, 9, 1), hour=10, message=message,
        created_by=make_user(account, f"opener-{UsageDispute.objects.count()}",
                             email="ops@bravo.example"),
        created_at=RENEWED,
    )  # fmt: skip


def test_an_owner_opens_a_dispute_and_an_empty_message_is_named(client, period):
    made, invoice, line = period
    owner = make_user(made["bravo"], "bravo-owner")
    client.force_login(owner)
    # The hour page offers the form with its day and hour filled in.
    hour_url = reverse("dashboards:drilldown_hour", args=[invoice.id, line.id, "2026-09-01T10"])
    html = client.get(hour_url).content.decode()
    assert 'data-testid="dispute-form"' in html and 'value="2026-09-01"' in html
    # An empty message (blanks only), an hour without its day, a day outside the period.
    response = client.post(_dispute_url(invoice, line), {"message": "   ", "hour": "10"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_message-error"' in html and 'id="id_day-error"' in html
    assert "An hour needs its day." in html
    response = client.post(_dispute_url(invoice, line), {"message": "x", "day": "2026-10-01"})
    assert "outside the line&#x27;s period" in response.content.decode()
    assert not UsageDispute.objects.exists()
    with time_machine.travel(RENEWED, tick=False):
        response = client.post(
            _dispute_url(invoice, line),
            {"day": "2026-09-01", "hour": "10", "message": " 2 GB at 10:42 was uploaded twice "},
        )
    assert response.status_code == 302 and response.url == _line_url(invoice, line)
    [dispute] = UsageDispute.objects.all()
    assert (dispute.account, dispute.meter, dispute.invoice_id, dispute.line_id) == (
        made["bravo"], line.meter, invoice.id, line.id,
    )  # fmt: skip
    assert (dispute.day, dispute.hour, dispute.message) == (
        date(2026, 9, 1), 10, "2 GB at 10:42 was uploaded twice",
    )  # fmt: skip
    assert (dispute.created_by, dispute.created_at, dispute.status) == (owner, RENEWED, "open")
    html = client.get(_line_url(invoice, line)).content.decode()
    assert 'data-testid="dispute-status">Open<' in html and "uploaded twice" in html


def test_a_member_sees_no_form_and_is_refused(client, period):
    made, invoice, line = period
    client.force_login(make_user(made["bravo"], "bravo-member", role=Membership.Role.MEMBER))
    html = client.get(_line_url(invoice, line)).content.decode()
    assert 'data-testid="disputes"' in html and 'data-testid="dispute-form"' not in html
    response = client.post(_dispute_url(invoice, line), {"message": "wrong"})
    assert response.status_code == 403
    # A billing member may.
    client.force_login(make_user(made["bravo"], "bravo-ap", role=Membership.Role.BILLING))
    assert client.post(_dispute_url(invoice, line), {"message": "wrong"}).status_code == 302
    assert UsageDispute.objects.get().created_by.username == "bravo-ap"


def test_another_accounts_dispute_url_is_404(client, period):
    made, invoice, line = period
    _open(made["bravo"], invoice, line, message="bravo's secret complaint")
    client.force_login(make_user(made["alpha"], "alpha-owner"))
    url = _dispute_url(invoice, line)
    assert client.post(url, {"message": "mine now"}).status_code == 404
    query = f"?account={made['bravo'].pk}"
    assert client.post(url + query, {"message": "mine now"}).status_code == 404
    response = client.get(_line_url(invoice, line))
    assert response.status_code == 404 and "secret complaint" not in response.content.decode()
    assert UsageDispute.objects.count() == 1


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("staff", "staff@meterdesk.example", "pw")
    client.force_login(user)
    return user


def test_staff_resolve_with_a_reply_and_the_customer_gets_one_email(
    client, period, staff, django_capture_on_commit_callbacks
):
    made, invoice, line = period
    dispute = _open(made["bravo"], invoice, line)
    url = reverse("admin:usage_usagedispute_change", args=[dispute.pk])
    listing = client.get(reverse("admin:usage_usagedispute_changelist")).content.decode()
    assert "bravo Co" in listing and invoice.id in listing
    # A reply without text is refused by the form, nothing sent.
    response = client.post(url, {"resolve_with": "reply", "reply": " "})
    assert response.status_code == 200 and "A reply needs a text." in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"resolve_with": "reply", "reply": "Both uploads were distinct files."}
        )
    assert response.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.status, dispute.resolution, dispute.resolved_by) == (
        "resolved", "reply", staff,
    )  # fmt: skip
    assert dispute.correction is None and dispute.resolved_at is not None
    [email] = mail.outbox
    assert email.to == ["ops@bravo.example"]
    assert "Both uploads were distinct files." in email.body
    assert _line_url(invoice, line) in email.body
    client.force_login(make_user(made["bravo"], "bravo-reader", role=Membership.Role.MEMBER))
    html = client.get(_line_url(invoice, line)).content.decode()
    assert 'data-testid="dispute-status">Resolved<' in html
    assert 'data-testid="dispute-reply">Our reply: Both uploads were distinct files.' in html


def test_staff_resolve_with_a_correction_and_the_email_names_it_and_its_amount(
    client, period, staff, django_capture_on_commit_callbacks
):
    made, invoice, line = period
    dispute = _open(made["bravo"], invoice, line)
    url = reverse("admin:usage_usagedispute_change", args=[dispute.pk])
    later = RENEWED + timedelta(minutes=5)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url,
            {"resolve_with": "correction", "reply": "Duplicate upload",
             "void_identifiers": "bravo-data_transfer_gb-1"},
        )  # fmt: skip
    assert response.status_code == 302
    [correction] = UsageCorrection.objects.all()
    # The invoice is paid: a credit note. 30 GB billed, 28 GB after voiding the 2 GB
    # event, at 5¢ a GB: 30 x 5 - 28 x 5 = 150 - 140 = 10¢.
    assert (correction.path, correction.credit_amount, correction.quantity) == (
        "credit_note", 10, -2,
    )  # fmt: skip
    dispute.refresh_from_db()
    assert (dispute.status, dispute.resolution, dispute.correction) == (
        "resolved", "correction", correction,
    )  # fmt: skip
    [email] = mail.outbox
    assert f"correction #{correction.pk}" in email.body
    assert "credit note of $0.10" in email.body and "-2 GB" in email.body
    # Resolving again is refused and sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"resolve_with": "reply", "reply": "again"})
    assert "This dispute is already resolved." in response.content.decode()
    assert len(mail.outbox) == 1
    client.force_login(make_user(made["bravo"], "bravo-reader"))
    html = client.get(_line_url(invoice, line)).content.decode()
    assert f"Resolved with correction #{correction.pk}" in html
    assert "credit note of $0.10" in html
