"""Webhook forwarding, like ``stripe listen --forward-to``.

A rule ``FROM -> TO`` rewrites the URL an event is *delivered* to when the endpoint's
URL starts with ``FROM`` (the scheme and host, optionally a path): the prefix is
replaced with ``TO`` and the rest (path, query) is kept. The endpoint's stored ``url``
stays as created, so an endpoint can be registered with a public URL (dj-stripe's
admin refuses loopback ones) while the emulator delivers to a local server::

    https://meterdesk.example/stripe/webhook/<uuid>/
    -> http://127.0.0.1:8000/stripe/webhook/<uuid>/   (rule https://meterdesk.example=http://127.0.0.1:8000)

A prefix matches whole path segments only (``https://a.example`` matches
``https://a.example/x`` but not ``https://a.example.org/x``); the longest matching
``FROM`` wins. Rules given at start (``--forward-webhooks FROM=TO``) are kept across
``POST /_emulator/reset``; rules added at run time (``POST /_emulator/webhook_forwarding``)
are cleared by it.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit


def normalize(url: str, what: str) -> str:
    """An absolute http(s) URL without a trailing slash; ValueError otherwise."""
    url = str(url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment, got {url!r}")
    return url.rstrip("/")


def parse_rule(text: str) -> tuple[str, str]:
    """``FROM=TO`` (the command-line form) -> (from, to)."""
    source, sep, target = text.partition("=")
    if not sep:
        raise ValueError(f"expected FROM=TO, got {text!r}")
    return normalize(source, "FROM"), normalize(target, "TO")


class Forwarding:
    def __init__(self, rules=()):
        self._lock = threading.Lock()
        self._initial = dict(rules)
        self._rules = dict(self._initial)

    def set(self, source: str, target: str | None) -> None:
        """Add or replace the rule for ``source``; ``target`` None removes it."""
        source = normalize(source, "from")
        target = normalize(target, "to") if target else None
        with self._lock:
            if target is None:
                self._rules.pop(source, None)
            else:
                self._rules[source] = target

    def reset(self) -> None:
        """Back to the rules given at start."""
        with self._lock:
            self._rules = dict(self._initial)

    def rules(self) -> list[dict]:
        with self._lock:
            return [{"from": s, "to": t} for s, t in sorted(self._rules.items())]

    def rewrite(self, url: str) -> str:
        """The URL to deliver to for an endpoint whose URL is ``url``."""
        with self._lock:
            rules = sorted(self._rules.items(), key=lambda rule: len(rule[0]), reverse=True)
        for source, target in rules:
            if url == source:
                return target
            rest = url[len(source) :]
            if url.startswith(source) and rest[:1] in ("/", "?", "#"):
                return target + rest
        return url
