from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing.selectors import account_for_user
from billing.services.portal import PortalNotAllowed, PortalUnavailable, portal_session_create


@require_POST
@login_required
def portal(request: HttpRequest) -> HttpResponse:
    """Into the Stripe Customer Portal for the signed-in user's own account (303); when
    Stripe gives no session, a page saying so (503 if trying later may help, else 502),
    with Stripe's words for staff only (the service has logged them)."""
    account = account_for_user(user=request.user)
    if account is None:
        raise Http404("no account")
    try:
        url = portal_session_create(
            account=account,
            user=request.user,
            return_url=request.build_absolute_uri(reverse("dashboards:home")),
        )
    except PortalNotAllowed as exc:
        return HttpResponseForbidden(str(exc))
    except PortalUnavailable as exc:
        context = {
            "temporary": exc.temporary,
            "detail": exc.detail if request.user.is_staff else "",
        }
        status = 503 if exc.temporary else 502
        return render(request, "billing/portal_unavailable.html", context, status=status)
    return _see_other(url)


def _see_other(url: str) -> HttpResponse:
    response = HttpResponse(status=303)
    response["Location"] = url
    return response
