"""In-memory state: every object by type and id, id generation, one lock, save/load.

Objects are kept in their public JSON shape. Keys starting with ``_`` are internal
(e.g. a payment method's test behaviour) and are stripped by :func:`render`.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import string
import threading
import time
from pathlib import Path

_ALPHABET = string.ascii_letters + string.digits

# Stripe-like id prefixes, by object type.
PREFIXES = {
    "billing.credit_balance_transaction": "cbtxn",
    "billing.credit_grant": "credgr",
    "billing.meter": "mtr",
    "billing.meter_event_adjustment": "mtradj",
    "billing_portal.configuration": "bpc",
    "billing_portal.session": "bps",
    "credit_note": "cn",
    "customer": "cus",
    "customer_balance_transaction": "cbtxn",
    "event": "evt",
    "invoice": "in",
    "invoiceitem": "ii",
    "line_item": "il",
    "payment_method": "pm",
    "price": "price",
    "product": "prod",
    "subscription": "sub",
    "subscription_item": "si",
    "subscription_schedule": "sub_sched",
    "test_helpers.test_clock": "clock",
    "webhook_endpoint": "we",
    "charge": "ch",
    "payment_intent": "pi",
    "v2.core.event_destination": "ed",
}


def random_token(length: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def render(obj: dict) -> dict:
    """The public shape of a stored object: a deep copy without ``_``-prefixed keys."""
    return copy.deepcopy({k: v for k, v in obj.items() if not k.startswith("_")})


class Store:
    """All emulator state. Every read and write happens under ``lock``."""

    def __init__(self, state_file: str | None = None, base_url: str = "http://127.0.0.1:12111"):
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self.base_url = base_url
        self.account_id = "acct_1Emu" + random_token(12)
        self.dirty = False
        # Ids added during the API request being served, removed again if it fails, so a
        # failed request leaves no half-created objects (None outside requests).
        self.journal: list[tuple[str, str]] | None = None
        self.reset()
        if self.state_file and self.state_file.exists():
            self.load()

    # -- life cycle -------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, dict[str, dict]] = {}
            self.index: dict[str, str] = {}
            self.meter_events: list[dict] = []
            self.meter_event_ids: dict[str, dict] = {}
            self.sessions: dict[str, int] = {}
            self.seq = 0
            self.time_offset = 0

    def mark_dirty(self) -> None:
        """Note a change; :meth:`flush` (called by the real-time thread every ``--tick``
        seconds) and shutdown write it, so busy clients do not pay for a dump per call."""
        self.dirty = True

    def flush(self) -> None:
        if self.dirty:
            self.save()

    def save(self) -> None:
        """Write the state file atomically (no-op without ``--state``)."""
        if not self.state_file:
            return
        with self.lock:
            self.dirty = False
            data = {
                "account_id": self.account_id,
                "objects": self.objects,
                "meter_events": self.meter_events,
                "seq": self.seq,
                "time_offset": self.time_offset,
            }
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.state_file)

    def load(self) -> None:
        with self.lock:
            data = json.loads(self.state_file.read_text())
            self.account_id = data.get("account_id", self.account_id)
            self.objects = data["objects"]
            self.meter_events = data["meter_events"]
            self.seq = data.get("seq", 0)
            self.time_offset = data.get("time_offset", 0)
            self.index = {oid: kind for kind, objs in self.objects.items() for oid in objs}
            self.meter_event_ids = {
                e["identifier"]: e for e in self.meter_events if e.get("identifier")
            }

    # -- objects ----------------------------------------------------------------------
    def new_id(self, kind: str, length: int = 14) -> str:
        prefix = PREFIXES.get(kind, "obj")
        while True:
            oid = f"{prefix}_{random_token(length)}"
            if oid not in self.index:
                return oid

    def add(self, kind: str, obj: dict) -> dict:
        self.seq += 1
        obj["_seq"] = self.seq
        self.objects.setdefault(kind, {})[obj["id"]] = obj
        self.index[obj["id"]] = kind
        if self.journal is not None:
            self.journal.append((kind, obj["id"]))
        return obj

    def undo_additions(self) -> None:
        """Remove what the failed request added (changes to existing objects stay)."""
        for kind, oid in reversed(self.journal or []):
            self.delete(kind, oid)

    def get(self, kind: str, oid: str) -> dict | None:
        return self.objects.get(kind, {}).get(oid)

    def find(self, oid: str) -> dict | None:
        """Any object by id, whatever its type (used by ``expand``)."""
        kind = self.index.get(oid)
        return self.get(kind, oid) if kind else None

    def delete(self, kind: str, oid: str) -> dict | None:
        self.index.pop(oid, None)
        return self.objects.get(kind, {}).pop(oid, None)

    def all(self, kind: str) -> list[dict]:
        """Objects of a type, newest first (Stripe's list order)."""
        objs = list(self.objects.get(kind, {}).values())
        objs.sort(key=lambda o: (o.get("created", 0), o.get("_seq", 0)), reverse=True)
        return objs

    # -- time -------------------------------------------------------------------------
    def real_now(self) -> int:
        """Wall-clock time, plus the offset set by ``POST /_emulator/time/advance``."""
        return int(time.time()) + self.time_offset

    def clock_now(self, clock_id: str | None) -> int:
        clock = self.get("test_helpers.test_clock", clock_id) if clock_id else None
        return clock["frozen_time"] if clock else self.real_now()

    def customer_now(self, customer_id: str | None) -> int:
        """'Now' for a customer: its test clock's frozen time, or the real time."""
        customer = self.get("customer", customer_id) if customer_id else None
        return self.clock_now(customer.get("test_clock") if customer else None)
