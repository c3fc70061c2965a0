"""Password reset by e-mail, throttled so the form cannot be used to flood an inbox.

At most ``PASSWORD_RESET_PER_ADDRESS`` e-mails per address and
``PASSWORD_RESET_PER_IP`` requests per client address in a rolling hour (the default
cache counts; Redis in production). Over the limit nothing is sent, and the answer is the
same "check your e-mail" page as always, so the form still does not reveal whether an
address has an account. A cache outage lets the request through (logged): a reset
e-mail that goes out is better than a user locked out of their account.
"""

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpResponseRedirect

from config.client_ip import client_ip

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 3600


def _over_limit(key: str, limit: int) -> bool:
    try:
        cache.add(key, 0, WINDOW_SECONDS)
        return cache.incr(key) > limit
    except Exception:
        logger.warning("password reset throttle unavailable", exc_info=True)
        return False


def password_reset_allowed(*, email: str, ip: str | None) -> bool:
    address = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    by_address = _over_limit(f"pwreset:addr:{address}", settings.PASSWORD_RESET_PER_ADDRESS)
    by_ip = _over_limit(f"pwreset:ip:{ip or '-'}", settings.PASSWORD_RESET_PER_IP)
    return not (by_address or by_ip)


class ThrottledPasswordResetView(auth_views.PasswordResetView):
    def form_valid(self, form):
        email = form.cleaned_data["email"]
        if not password_reset_allowed(email=email, ip=client_ip(self.request)):
            logger.info("password reset throttled")
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)
