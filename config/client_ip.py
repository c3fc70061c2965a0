"""The client's IP address, for login throttling, behind a known number of proxies.

Production runs behind a TLS proxy (or a load balancer and a proxy): ``REMOTE_ADDR`` is
then the proxy's address for every visitor, and throttling by it would lock everyone out
at once. Each trusted proxy appends the address it received the request from to
``X-Forwarded-For``; with ``TRUSTED_PROXY_COUNT`` = n, the client is the n-th entry from
the right. Entries further left were written by the client and are not trusted.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    count = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < count:
        return remote  # not through all the proxies we expect: trust only the socket
    candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
