"""``{% sso_sign_in as sso %}``: the login page's "Sign in with ..." button, when enabled."""

from django import template

from dashboards.oidc import oidc_sign_in

register = template.Library()


@register.simple_tag
def sso_sign_in() -> dict | None:
    return oidc_sign_in()
