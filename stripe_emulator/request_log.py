"""``--log-requests FILE``: every API request the emulator answers, as JSON lines.

One line per ``/v1`` or ``/v2`` request: ``{"method", "path", "route", "params",
"status"}`` with ``params`` decoded as the handler sees them (``items[0][price]`` nested)
and ``route`` the template that served it (``/v1/customers/{id}``; ``null`` for a 404).
Collected from a demo run, it is what ``tests/stripe_emulator/test_param_rules.py``
replays through the parameter rules."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

from .errors import StripeError
from .routing import match


class RequestLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, method: str, raw_path: str, headers, body: bytes, status: int) -> None:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        if not path.startswith(("/v1/", "/v2/")):
            return
        from .app import Emulator  # the one decoder of parameters

        try:
            params = Emulator._params(method, parts.query, headers, body, path.startswith("/v2/"))
        except StripeError:
            params = None
        route, _, _ = match(method, path)
        line = {
            "method": method,
            "path": path,
            "route": route.template if route else None,
            "params": params,
            "status": status,
        }
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")
