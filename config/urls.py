from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from billing.views_thin_events import thin_events
from config.password_reset import ThrottledPasswordResetView
from dashboards import embed_views
from dashboards.oidc import oidc_enabled
from usage import urls as usage_urls

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboards:home", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Password reset by e-mail (Django's views; the templates are in templates/registration/).
    # The "sent" page reads the same whether or not the address belongs to a user, and
    # whether or not the request was throttled (config/password_reset.py).
    path(
        "accounts/password-reset/",
        ThrottledPasswordResetView.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("admin/revenue/", include("revenue.urls")),
    path("admin/", admin.site.urls),
    path("stripe/thin-events/", thin_events, name="thin_events"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("billing/", include("billing.urls")),
    path("dashboard/", include("dashboards.urls")),
    path("api/v1/usage/", include("usage.urls")),
    path("api/v1/entitlements/", include(usage_urls.entitlement_urlpatterns)),
    path("api/v1/customers/", include(usage_urls.read_api_urlpatterns)),
    # The embeddable usage widget: tokens minted with an API key, pages opened by them.
    path("api/v1/embed_tokens", embed_views.embed_token_mint, name="embed_token_mint"),
    path("embed/usage", embed_views.embed_usage, name="embed_usage"),
    path(
        "embed/usage/chart/<slug:event_name>.json",
        embed_views.embed_usage_chart,
        name="embed_usage_chart",
    ),
    # Sign-in with the operator's OIDC provider, only when configured (dashboards.oidc):
    # /sso/oidc/<OIDC_PROVIDER_ID>/login/ and .../login/callback/ (allauth's openid_connect).
    *(
        [path("sso/", include("allauth.socialaccount.providers.openid_connect.urls"))]
        if oidc_enabled()
        else []
    ),
]
