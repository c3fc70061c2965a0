"""Route table: ``@route("POST", "/v1/customers/{id}")`` registers a handler.

A handler takes a :class:`Request` and returns a dict (answered 200 as JSON), a
``(status, dict)`` pair, or a :class:`Response` (HTML pages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Emulator
    from .store import Store


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


@dataclass
class Request:
    app: Emulator
    method: str
    path: str
    params: dict
    headers: Any
    args: dict = field(default_factory=dict)
    request_id: str = ""

    @property
    def store(self) -> Store:
        return self.app.store

    def emit(self, event_type: str, obj: dict, previous: dict | None = None) -> None:
        self.app.emit(event_type, obj, previous)


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    handler: Any
    auth: str  # "secret" (sk_test_ key), "session" (v2 meter event session token), "none"
    template: str = ""  # "/v1/customers/{id}": the key of its parameter rules


ROUTES: list[Route] = []


def route(method: str, template: str, *, auth: str = "secret"):
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    pattern = re.compile(f"^{regex}$")

    def register(fn):
        ROUTES.append(Route(method, pattern, fn, auth, template))
        return fn

    return register


def match(method: str, path: str) -> tuple[Route | None, dict, bool]:
    """(route, path args, path exists with another method)."""
    path_exists = False
    # Literal routes win over templated ones ("/v1/invoices/create_preview").
    for candidate in sorted(ROUTES, key=lambda r: r.pattern.groups):
        found = candidate.pattern.match(path)
        if found:
            if candidate.method == method:
                return candidate, found.groupdict(), True
            path_exists = True
    return None, {}, path_exists
