"""Handlers of Stripe thin events, by type: a registry, so that billing never imports the
apps that act on them (usage registers the meter error report handler at ``ready()``).

A handler takes the whole event as fetched from ``GET /v2/core/events/{id}`` (a dict:
``id``, ``type``, ``related_object``, ``data``, ...) and returns a short account of what
it did, stored on the ``ThinEvent`` row for staff. It must be idempotent: a redelivered
or retried event is handed over again."""

from __future__ import annotations

from collections.abc import Callable

ThinEventHandler = Callable[..., str]

_handlers: dict[str, list[ThinEventHandler]] = {}


def thin_event_handler_register(*, event_type: str, handler: ThinEventHandler) -> None:
    found = _handlers.setdefault(event_type, [])
    if handler not in found:
        found.append(handler)


def thin_event_handlers(*, event_type: str) -> list[ThinEventHandler]:
    return list(_handlers.get(event_type, []))
