"""A correction's Stripe call runs after its transaction (issue 15): recorded pending,
then Stripe, then the result. A refusal leaves it failed with Stripe's message and
nothing else written; a retry completes it once; a crash between the steps leaves it
pending until the stale pass applies it. Test clock and amounts as in test_adjust."""

# ruff: noqa: F811  (the fixtures imported from test_adjust are parameters here)

from datetime import timedelta
from unittest import mock

import pytest
import stripe
from django.contrib.admin.models import LogEntry

from billing.services.test_clocks import test_clock_advance
from tests.usage.test_adjust import (  # noqa: F401 (fixtures)
    FEB_15,
    HOUR,
    T0,
    _fast,
    _ledger,
    _renewal_invoice,
    _summaries,
    growth,
    growth_unreported,
)
from usage.models import UsageCorrection, UsageReport, VoidedEvent
from usage.selectors.corrections import corrections_for_account
from usage.services import correction_apply as apply
from usage.services.correction_apply import correction_retry, corrections_stale_retry
from usage.services.corrections import CorrectionNotPossible, usage_events_void

pytestmark = pytest.mark.django_db(transaction=True)
MINUTE = timedelta(minutes=1)


def test_a_refused_credit_note_leaves_the_correction_failed_and_a_retry_completes_it_once(
    stripe_client, growth, admin_user
):
    clock, account, cus, meter = growth
    after = FEB_15 + 2 * HOUR
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=after)
    invoice, _ = _renewal_invoice(stripe_client, cus)
    refusal = stripe.APIConnectionError("Could not connect to Stripe (test).")
    with mock.patch.object(stripe_client.v1.credit_notes, "create", side_effect=refusal):
        correction = usage_events_void(
            account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
            user=admin_user, client=stripe_client, now=after,
        )  # fmt: skip
    assert correction.status == "failed"
    assert correction.error == "Could not connect to Stripe (test)."
    correction.refresh_from_db()
    # Failed, the planned note kept (32 GB, tier 1: 32 × 10¢ + 500¢ = 820¢;
    # 2,136 − 820 = 1,316¢), no note id, and no note in Stripe.
    assert (correction.status, correction.stripe_credit_note_id) == ("failed", "")
    assert correction.last_error == "Could not connect to Stripe (test)."
    assert (correction.credit_amount, correction.billed_quantity) == (1316, 32)
    assert stripe_client.v1.credit_notes.list({"invoice": invoice.id}).data == []
    # The ledger holds the void (142 − 110 = 32), which is what the note will credit.
    assert VoidedEvent.objects.filter(correction=correction).count() == 1
    assert _ledger(account, meter) == 32
    # Staff see Stripe's message in the correction's history; the customer sees "not yet".
    entry = LogEntry.objects.get(object_id=str(correction.pk))
    assert entry.change_message == "Stripe refused it: Could not connect to Stripe (test)."
    [row] = corrections_for_account(account=account)
    assert "Stripe refused it" in row.how and row.credit_amount == 1316

    retried = correction_retry(correction=correction, client=stripe_client, now=after)
    assert retried.status == "applied" and retried.stripe_credit_note_id
    retried.refresh_from_db()
    assert retried.last_error == ""
    note = stripe_client.v1.credit_notes.retrieve(retried.stripe_credit_note_id)
    assert (note.amount, note.invoice) == (1316, invoice.id)
    # Retrying an applied correction does nothing.
    again = correction_retry(correction=correction, client=stripe_client, now=after)
    assert again.stripe_credit_note_id == note.id
    # A crash after Stripe made the note but before it was recorded: the retry finds the
    # note (its metadata) instead of making a second one ...
    UsageCorrection.objects.filter(pk=correction.pk).update(
        status="pending", stripe_credit_note_id=""
    )
    found = correction_retry(correction=correction, client=stripe_client, now=after)
    assert (found.status, found.stripe_credit_note_id) == ("applied", note.id)
    # ... and even without looking, the same request under the same idempotency key is
    # replayed by Stripe: the same note, not a new one.
    pending = UsageCorrection.objects.select_related("meter").get(pk=correction.pk)
    with mock.patch.object(apply, "credit_note_find", return_value=None):
        assert apply._stripe_call(pending, stripe_client) == note.id
    notes = stripe_client.v1.credit_notes.list({"invoice": invoice.id}).data
    assert [n.id for n in notes] == [note.id]
    invoice = stripe_client.v1.invoices.retrieve(invoice.id)
    assert invoice.total - note.amount == 2136 - 1316 == 820


def test_a_crash_before_the_cancel_leaves_it_pending_until_the_stale_pass_applies_it(
    stripe_client, growth
):
    clock, account, cus, meter = growth
    soon = T0 + 3 * HOUR  # 2 h after Stripe received the report: cancelable
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=soon)
    [first] = UsageReport.objects.filter(account=account)
    # The process dies right after the first transaction commits.
    with mock.patch(
        "usage.services.corrections.correction_apply_after_commit",
        side_effect=lambda *, correction, **_: correction,
    ):
        correction = usage_events_void(
            account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
            client=stripe_client, now=soon,
        )  # fmt: skip
    correction.refresh_from_db()
    assert (correction.path, correction.status) == ("cancel_rereport", "pending")
    # Readers see the corrected ledger (142 − 110 = 32); Stripe still has 142; the report
    # is untouched and nothing is re-reported yet.
    first.refresh_from_db()
    assert (first.status, correction.rereport_id) == ("sent", None)
    assert _ledger(account, meter) == 32
    assert _summaries(stripe_client, cus) == 142
    # Another void of the same report waits for this one.
    with pytest.raises(CorrectionNotPossible, match="waiting for Stripe"):
        usage_events_void(
            account=account, meter=meter, identifiers=["g20"], reason="dup",
            client=stripe_client, now=soon,
        )  # fmt: skip
    # The stale pass leaves a correction younger than 5 minutes alone ...
    assert corrections_stale_retry(client=stripe_client, now=soon + 4 * MINUTE) == 0
    # ... and applies it after: canceled in Stripe, the remaining 20 + 12 re-reported.
    assert corrections_stale_retry(client=stripe_client, now=soon + 6 * MINUTE) == 1
    correction.refresh_from_db()
    first.refresh_from_db()
    assert (correction.status, first.status) == ("applied", "canceled")
    assert (correction.rereport.value, correction.rereport.sequence) == (32, 2)
    assert _summaries(stripe_client, cus) == 0
    from usage.services.reporting import usage_report_pass

    usage_report_pass(now=soon + 6 * MINUTE)
    assert _summaries(stripe_client, cus) == _ledger(account, meter) == 32
    assert corrections_stale_retry(client=stripe_client, now=soon + HOUR) == 0


def test_stripe_refusing_the_cancel_leaves_the_report_as_it_was(stripe_client, growth):
    clock, account, cus, meter = growth
    # Stripe's clock is 26 h after the report, Meterdesk's (wrongly) 3 h: Meterdesk picks
    # the cancel, Stripe refuses it (its 24 h window).
    test_clock_advance(client=stripe_client, clock_id=clock.id, to=T0 + 26 * HOUR)
    [first] = UsageReport.objects.filter(account=account)
    correction = usage_events_void(
        account=account, meter=meter, identifiers=["g110"], reason="misattributed backup",
        client=stripe_client, now=T0 + 3 * HOUR,
    )  # fmt: skip
    assert correction.status == "failed"
    assert "within 24 hours" in correction.error
    first.refresh_from_db()
    # Nothing half-written: the report still sent, nothing re-reported, Stripe has 142.
    assert (first.status, correction.rereport_id) == ("sent", None)
    assert UsageReport.objects.filter(account=account).count() == 1
    assert _summaries(stripe_client, cus) == 142
