"""django-allauth's admin pages: only "Social accounts", and only with sign-in with OIDC on.

allauth is installed for the optional OIDC sign-in (dashboards.oidc). Its provider is
configured in settings, never in ``SocialApp`` rows (ignored by the adapter); tokens are
not stored; its own e-mail addresses are unused (Meterdesk's users carry theirs). So those
admin pages are unregistered. The social accounts (which member signed in with which
provider identity; deleting one unlinks it) stay for staff when OIDC is on.
"""

from allauth.account import admin as account_admin  # registers first, then we unregister
from allauth.account.models import EmailAddress
from allauth.socialaccount import admin as socialaccount_admin
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin

from dashboards.oidc import oidc_enabled

assert account_admin and socialaccount_admin  # imported for their registrations

for model in (EmailAddress, SocialApp, SocialToken):
    admin.site.unregister(model)
if not oidc_enabled():
    admin.site.unregister(SocialAccount)
