from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing.selectors import account_for_user
from billing.services.portal import PortalNotAllowed, portal_session_create


@require_POST
@login_required
def portal(request: HttpRequest) -> HttpResponse:
    """Into the Stripe Customer Portal for the signed-in user's own account (303)."""
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
    return _see_other(url)


def _see_other(url: str) -> HttpResponse:
    response = HttpResponse(status=303)
    response["Location"] = url
    return response
