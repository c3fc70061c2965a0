"""Test clocks: create, retrieve, list, advance, delete.

``advance`` answers ``status: advancing`` at once; a background thread then closes
every period that ends on or before the new ``frozen_time`` for the subscriptions of
the clock's customers (several periods if the jump is long) and sets ``ready``."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .. import invoicing
from ..errors import invalid
from ..forms import as_int
from ..lists import paginate, present
from ..routing import Request, route
from ..webhooks import set_current_request
from .common import deleted, get_or_404, require, show, snapshot

if TYPE_CHECKING:
    from ..app import Emulator

DELETES_AFTER = 30 * 86400
ADVANCE_DELAY = 0.05  # seconds during which the clock visibly reports "advancing"


def _clock(req: Request) -> dict:
    return get_or_404(req, "test_helpers.test_clock", req.args["id"], label="test_clock")


@route("POST", "/v1/test_helpers/test_clocks")
def create(req: Request):
    store = req.store
    frozen = as_int(require(req.params, "frozen_time"), "frozen_time")
    now = store.real_now()
    clock = {
        "id": store.new_id("test_helpers.test_clock", 24),
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + DELETES_AFTER,
        "frozen_time": frozen,
        "livemode": False,
        "name": req.params.get("name") or None,
        "status": "ready",
        "status_details": {},
    }
    store.add("test_helpers.test_clock", clock)
    req.emit("test_helpers.test_clock.created", snapshot(req, clock))
    return show(req, clock)


@route("GET", "/v1/test_helpers/test_clocks/{id}")
def retrieve(req: Request):
    return show(req, _clock(req))


@route("GET", "/v1/test_helpers/test_clocks")
def list_(req: Request):
    return paginate(
        req.store,
        req.store.all("test_helpers.test_clock"),
        req.params,
        "/v1/test_helpers/test_clocks",
    )


@route("POST", "/v1/test_helpers/test_clocks/{id}/advance")
def advance(req: Request):
    clock = _clock(req)
    target = as_int(require(req.params, "frozen_time"), "frozen_time")
    if clock["status"] != "ready":
        raise invalid("The test clock is already advancing.", code="test_clock_not_ready")
    if target <= clock["frozen_time"]:
        raise invalid(
            "Test clocks can only move forward: frozen_time must be after the current frozen_time.",
            param="frozen_time",
        )
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": target}}
    clock["frozen_time"] = target
    req.emit("test_helpers.test_clock.advancing", snapshot(req, clock))
    threading.Thread(target=_finish_advance, args=(req.app, clock["id"]), daemon=True).start()
    return show(req, clock)


def _finish_advance(app: Emulator, clock_id: str) -> None:
    time.sleep(ADVANCE_DELAY)
    with app.store.lock:
        set_current_request(None, None)
        clock = app.store.get("test_helpers.test_clock", clock_id)
        if clock is None:
            return
        try:
            invoicing.close_due_periods(app, clock_id)
        finally:
            clock["status"] = "ready"
            clock["status_details"] = {}
            app.emit("test_helpers.test_clock.ready", present(app.store, clock))
            app.store.mark_dirty()


@route("DELETE", "/v1/test_helpers/test_clocks/{id}")
def delete(req: Request):
    clock = _clock(req)
    store = req.store
    for customer in list(store.all("customer")):
        if customer["test_clock"] == clock["id"]:
            for sub in store.all("subscription"):
                if sub["customer"] == customer["id"]:
                    store.delete("subscription", sub["id"])
                    for item_id in sub["_items"]:
                        store.delete("subscription_item", item_id)
            store.delete("customer", customer["id"])
    store.delete("test_helpers.test_clock", clock["id"])
    req.emit("test_helpers.test_clock.deleted", present(store, clock))
    return deleted(clock)
