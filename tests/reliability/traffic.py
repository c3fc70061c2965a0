"""Usage traffic for a fault-matrix case: generated events, and a client that posts them
in batches the way a careful backend does (a 5xx or a dropped connection: the same batch
again, with the same identifiers, until it is answered 202)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import requests


def generate(*, case: str, customers: dict[str, str], n: int, now: int, seed: int) -> list[dict]:
    """``n`` events over the customers (``{cus_id: event_name}``, each customer using its
    plan's meter), timestamps in the last two days (several billing periods per pair),
    values 0-1,000 for sum meters, none (1) for count meters."""
    rng = random.Random(seed)
    ids = sorted(customers)
    events = []
    for i in range(n):
        cus = rng.choice(ids)
        event = {
            "event_name": customers[cus],
            "customer": cus,
            "timestamp": rng.randint(now - 2 * 86400, now),
            "identifier": f"{case}-{i:06d}",
        }
        if customers[cus] != "api_calls":
            event["value"] = rng.randint(0, 1000)
        events.append(event)
    return events


@dataclass
class Traffic:
    """Posts ``events`` in batches of ``batch`` from a thread, ``pause`` seconds apart."""

    url: str
    key: str
    events: list[dict]
    batch: int
    pause: float
    accepted: int = 0
    duplicates: int = 0
    rejected: list = field(default_factory=list)
    server_errors: int = 0  # 5xx answers and dropped connections, each retried
    batches_done: int = 0
    error: BaseException | None = None

    def __post_init__(self):
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {self.key}"

    @property
    def batches(self) -> int:
        return -(-len(self.events) // self.batch)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def _post(self, batch: list[dict]) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = self._session.post(self.url, json={"events": batch}, timeout=30)
            except requests.RequestException:
                r = None
            if r is not None and r.status_code == 202:
                body = r.json()
                self.accepted += body["accepted"]
                self.duplicates += body["duplicates"]
                self.rejected += body["rejected"]
                return
            if r is not None and r.status_code < 500:
                raise AssertionError(f"ingestion answered {r.status_code}: {r.text[:500]}")
            self.server_errors += 1
            if time.monotonic() > deadline:
                raise AssertionError("ingestion did not accept a batch within 120 s")
            time.sleep(0.2)

    def _run(self) -> None:
        try:
            for i in range(0, len(self.events), self.batch):
                self._post(self.events[i : i + self.batch])
                self.batches_done += 1
                time.sleep(self.pause)
        except BaseException as exc:  # re-raised by join() in the test's thread
            self.error = exc

    def wait_batches(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.batches_done < min(n, self.batches) and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"traffic did not reach batch {n}")
            time.sleep(0.02)

    def join(self, timeout: float = 300) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self._thread.is_alive(), "traffic is still posting"
