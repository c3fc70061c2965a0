"""``POST /stripe/thin-events/``: Stripe's thin events (v2 event destinations), verified
and stored by :func:`billing.services.thin_events.thin_event_receive`, processed after
the commit by a task (and by the beat task if that is lost)."""

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.services.thin_events import ThinEventRejected, thin_event_receive


@csrf_exempt
@require_POST
def thin_events(request: HttpRequest) -> HttpResponse:
    try:
        with transaction.atomic():
            row = thin_event_receive(
                payload=request.body, signature=request.headers.get("Stripe-Signature")
            )
    except ThinEventRejected as exc:
        return HttpResponseBadRequest(str(exc))
    if row.processed_at is None:
        transaction.on_commit(lambda: _queue(row.pk))
    return HttpResponse(status=200)


def _queue(pk: int) -> None:
    from billing.tasks import process_thin_event

    try:
        process_thin_event.delay(pk)
    except Exception:  # broker down: the beat task picks the row up within a minute
        import logging

        logging.getLogger(__name__).exception("could not queue thin event %s", pk)
