"""A WSGI fast path for ``GET /api/v1/entitlements/check`` (issue 16): the check answered
without Django's middleware and URL resolver (sessions, auth, messages, CSRF, axes,
htmx: the API needs none of them, and they were about 40% of a check's CPU).

:func:`entitlement_fast_path` wraps Django's WSGI application (``config.wsgi``). The
check URL with any method but ``POST`` is answered by
:func:`usage.entitlement_views.check_answer`, the function the Django view answers
with, so the status codes and JSON bytes are the same; everything else, a batch
``POST``, a host not in ``ALLOWED_HOSTS`` and a plain-HTTP request that
``SECURE_SSL_REDIRECT`` would redirect go to Django unchanged. Database connections are
closed or kept as Django's ``request_started``/``request_finished`` do.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from usage.entitlement_views import WWW_AUTHENTICATE, check_answer

logger = logging.getLogger(__name__)

CHECK_PATH = "/api/v1/entitlements/check"
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    405: "405 Method Not Allowed",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
}


class _Settings:
    """The settings the fast path reads, read once (as SecurityMiddleware does)."""

    def __init__(self):
        self.forwarded_host = settings.USE_X_FORWARDED_HOST
        allowed = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]
        self.allowed_hosts = allowed
        self.proxy_ssl = settings.SECURE_PROXY_SSL_HEADER
        self.ssl_redirect = settings.SECURE_SSL_REDIRECT
        self.charset = settings.DEFAULT_CHARSET
        self.max_fields = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        self.headers = [("Content-Type", "application/json")]
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            self.headers.append(("X-Content-Type-Options", "nosniff"))
        self.hsts = None
        if settings.SECURE_HSTS_SECONDS:
            self.hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                self.hsts += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                self.hsts += "; preload"
        self.hosts: dict[str, bool] = {}  # Host header -> allowed

    def host_allowed(self, environ: dict) -> bool:
        """``HttpRequest.get_host``'s check: what Django would refuse, Django answers."""
        if self.forwarded_host and "HTTP_X_FORWARDED_HOST" in environ:
            host = environ["HTTP_X_FORWARDED_HOST"]
        else:
            host = environ.get("HTTP_HOST")
            if host is None:
                return False  # SERVER_NAME and port: rare, left to Django
        allowed = self.hosts.get(host)
        if allowed is None:
            domain, _ = split_domain_port(host)
            allowed = bool(domain) and validate_host(domain, self.allowed_hosts)
            if len(self.hosts) < 100:
                self.hosts[host] = allowed
        return allowed

    def secure(self, environ: dict) -> bool:
        if self.proxy_ssl and self.proxy_ssl[0] in environ:
            return environ[self.proxy_ssl[0]].split(",", 1)[0].strip() == self.proxy_ssl[1]
        return environ.get("wsgi.url_scheme") == "https"

    def query(self, environ: dict) -> dict[str, str] | None:
        """The query as ``QueryDict`` reads it (the last value of a repeated name), or
        None for more fields than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` (Django's 400)."""
        raw = environ.get("QUERY_STRING", "").encode("iso-8859-1")  # PEP 3333
        try:
            text = raw.decode(self.charset)
        except UnicodeDecodeError:
            text = raw.decode("iso-8859-1")
        try:
            return dict(
                parse_qsl(
                    text,
                    keep_blank_values=True,
                    encoding=self.charset,
                    max_num_fields=self.max_fields,
                )
            )
        except ValueError:
            return None

    def response_headers(self, status: int, body: bytes, secure: bool) -> list:
        headers = [*self.headers, ("Content-Length", str(len(body)))]
        if status == 401:
            headers.append(("WWW-Authenticate", WWW_AUTHENTICATE))
        if secure and self.hsts:
            headers.append(("Strict-Transport-Security", self.hsts))
        return headers


def _answer(environ: dict, params: dict[str, str]) -> tuple[int, dict]:
    close_old_connections()
    try:
        return check_answer(
            method=environ["REQUEST_METHOD"].upper(),
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
            params=params,
        )
    except Exception:
        logger.exception("entitlement check failed: %s", environ.get("QUERY_STRING", ""))
        return 500, {"error": {"code": "server_error", "message": "the check failed"}}
    finally:
        # As request_finished: a connection the check used (cold key or state, the
        # database fallback) is kept within CONN_MAX_AGE, closed when broken (~9 us).
        close_old_connections()


def entitlement_fast_path(application):
    """``application`` with the check URL answered before Django sees it."""
    conf = _Settings()

    def fast(environ, start_response):
        if (
            environ.get("PATH_INFO") != CHECK_PATH
            or environ.get("REQUEST_METHOD", "").upper() == "POST"
            or not conf.host_allowed(environ)
        ):
            return application(environ, start_response)
        secure = conf.secure(environ)
        params = conf.query(environ)
        if params is None or (conf.ssl_redirect and not secure):
            return application(environ, start_response)
        status, payload = _answer(environ, params)
        body = json.dumps(payload, cls=DjangoJSONEncoder).encode()
        start_response(_STATUS[status], conf.response_headers(status, body, secure))
        return [body]

    return fast
