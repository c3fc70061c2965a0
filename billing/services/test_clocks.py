"""Stripe test clocks: move a clock forward and wait until Stripe has caught up.

Advancing is asynchronous in Stripe (``advancing``, then ``ready``): the demo seed and
the tests that close periods all need the same wait."""

import time
from datetime import datetime


def test_clock_advance(*, client, clock_id: str, to: datetime, timeout: float = 30.0):
    """Advance to ``to`` and return the clock once it is ``ready``."""
    client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": int(to.timestamp())})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
        if clock.status == "ready":
            return clock
        time.sleep(0.05)
    raise TimeoutError(f"test clock {clock_id} did not become ready within {timeout}s")


test_clock_advance.__test__ = False  # a service, not a pytest test
