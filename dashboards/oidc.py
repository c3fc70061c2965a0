"""Sign-in with the operator's OpenID Connect provider (optional; issue 18).

django-allauth's ``openid_connect`` provider runs the flow (discovery, authorize with
state and PKCE, token, ID token checks, userinfo) under ``/sso/``; this module decides
who may come in. The provider never creates a Meterdesk user: members are made by
invitations. A sign-in is accepted only when the provider says the e-mail is verified
(``email_verified``) and exactly one active user with that e-mail has a membership;
anything else is refused with a page that says why, and nothing is written.

Off unless settings configure the app (``config/settings/base.py``: ``OIDC_SERVER_URL``
and ``OIDC_CLIENT_ID``); apps stored in the database (``SocialApp`` rows) are ignored, so
the provider is configured in settings only.
"""

import logging

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base.constants import AuthProcess
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

logger = logging.getLogger(__name__)

PROVIDER = "openid_connect"  # allauth's provider; URL names openid_connect_login/_callback


def oidc_app_settings() -> dict | None:
    """The one provider app configured in settings, or None when sign-in with OIDC is off."""
    apps = settings.SOCIALACCOUNT_PROVIDERS.get(PROVIDER, {}).get("APPS", [])
    return apps[0] if apps else None


def oidc_enabled() -> bool:
    return oidc_app_settings() is not None


def oidc_sign_in() -> dict | None:
    """What the login page needs for its "Sign in with ..." button, or None when off."""
    app = oidc_app_settings()
    if app is None:
        return None
    try:
        url = reverse(f"{PROVIDER}_login", kwargs={"provider_id": app["provider_id"]})
    except NoReverseMatch:  # configured but /sso/ not mounted (settings changed at runtime)
        return None
    return {"name": app.get("name") or app["provider_id"], "login_url": url}


def members_by_email(*, email: str) -> list:
    """Active users with this e-mail (any case) who are members of an account: at most two
    (e-mail is not unique on Django's user model; two matches must not pick one)."""
    return list(
        get_user_model()
        .objects.filter(email__iexact=email, is_active=True, memberships__isnull=False)
        .distinct()
        .order_by("pk")[:2]
    )


def _refuse(request: HttpRequest, reason: str, **context) -> ImmediateHttpResponse:
    app = oidc_app_settings() or {}
    logger.info("OIDC sign-in refused: %s", reason)
    response = render(
        request,
        "sso/refused.html",
        {"reason": reason, "provider_name": app.get("name", "your provider"), **context},
        status=403,
    )
    return ImmediateHttpResponse(response)


class MembersOnlySocialAccountAdapter(DefaultSocialAccountAdapter):
    """Existing members only: connect the provider's identity to the member whose verified
    e-mail it carries, or refuse. No sign-up, no connecting identities to other users."""

    def list_apps(self, request, provider=None, client_id=None):
        # Only the settings-backed app (no pk); SocialApp rows in the database never count.
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        return [app for app in apps if app.pk is None]

    def is_open_for_signup(self, request, sociallogin) -> bool:
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        if sociallogin.state.get("process", AuthProcess.LOGIN) != AuthProcess.LOGIN:
            raise _refuse(request, "process")  # only sign-in; no "connect" to a session user
        addresses = sociallogin.email_addresses
        verified = [address.email for address in addresses if address.verified]
        if not verified:
            email = addresses[0].email if addresses else ""
            raise _refuse(request, "unverified" if email else "no_email", email=email)
        email = verified[0]
        members = members_by_email(email=email)
        if len(members) != 1:
            raise _refuse(request, "ambiguous" if members else "no_account", email=email)
        user = members[0]
        if sociallogin.is_existing:
            # Signed in this way before: the identity must still belong to that member.
            if sociallogin.user.pk != user.pk:
                raise _refuse(request, "other_user", email=email)
            return
        sociallogin.connect(request, user)

    def on_authentication_error(
        self, request, provider, error=None, exception=None, extra_context=None
    ) -> None:
        # A wrong or missing state, a provider error, a cancelled sign-in, a bad ID token:
        # one page of ours (allauth's would link to account pages Meterdesk doesn't mount).
        logger.info("OIDC sign-in failed: %s %r", error, exception)
        raise _refuse(request, "error")
