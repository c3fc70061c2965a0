"""Outbound alert POSTs (operator webhooks, Slack) guarded against SSRF.

The URL's host is resolved once; every address it resolves to is checked with
``ipaddress`` and the request is refused (:class:`OutboundRefused`, nothing is connected
to) when any of them is private, loopback, link-local, multicast, reserved, unspecified or
otherwise not global, unless ``settings.ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS`` (tests, the
demo). The connection then goes to the address that was checked, not to a second lookup
(no DNS rebinding between check and connect): the urllib3 pool's host is that IP while the
``Host`` header, TLS SNI and certificate check keep the URL's hostname. Proxies from the
environment are ignored (a proxy would make its own lookup).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundRefused(ValueError):
    """The URL may not be requested (its host is, or resolves to, a non-public address)."""


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def private_hosts_allowed() -> bool:
    return bool(getattr(settings, "ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS", False))


def resolve_checked(url: str) -> str:
    """The address to connect to for ``url``: its host resolved, all addresses checked."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError as exc:  # e.g. a port above 65535
        raise OutboundRefused(f"not a valid URL ({exc})") from exc
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise OutboundRefused("only http and https URLs are sent to")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"host {parts.hostname} does not resolve ({exc})") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OutboundRefused(f"host {parts.hostname} does not resolve")
    if not private_hosts_allowed():
        blocked = [a for a in addresses if not address_is_public(a)]
        if blocked:
            raise OutboundRefused(
                f"host {parts.hostname} resolves to a non-public address ({blocked[0]})"
            )
    return addresses[0]


class _PinnedAdapter(HTTPAdapter):
    """Connects to ``address`` whatever the URL's host; TLS still checks ``hostname``."""

    def __init__(self, *, address: str, hostname: str):
        self.address, self.hostname = address, hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.hostname  # SNI
            pool_kwargs["assert_hostname"] = self.hostname  # certificate name
        return host_params, pool_kwargs


def guarded_post(url: str, *, data: bytes, headers: dict, timeout) -> requests.Response:
    """``requests.post(url, ...)`` (no redirects, streamed) to the checked address only;
    raises :class:`OutboundRefused` before connecting when the host is not allowed."""
    address = resolve_checked(url)
    parts = urlsplit(url)
    session = requests.Session()
    session.trust_env = False  # no proxies, no .netrc
    session.mount(f"{parts.scheme}://", _PinnedAdapter(address=address, hostname=parts.hostname))
    host_header = parts.netloc.rpartition("@")[2]  # host[:port], without credentials
    try:
        return session.post(
            url,
            data=data,
            headers={**headers, "Host": host_header},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
    finally:
        session.close()  # the streamed response keeps its own connection until closed
