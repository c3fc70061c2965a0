from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.selectors import account_for_user


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    account = account_for_user(user=request.user)
    return render(request, "dashboards/home.html", {"account": account})
