"""The demo app owns the demo's commands; dashboards keeps only customer pages."""

import random
from datetime import UTC, datetime

from django.core.management import get_commands

from demo.accounts import ACCOUNTS, MeterPlan, day_events


def test_the_demo_commands_belong_to_the_demo_app():
    commands = get_commands()
    for name in ("demo_seed", "demo_traffic", "ensure_staff_user"):
        assert commands[name] == "demo", name


def test_a_demo_day_is_deterministic_and_spread_over_the_hours():
    # 240 calls a weekday at the start, Monday factor 1.0; the same seed gives the same day.
    meter = MeterPlan("api_calls", 240)
    day = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
    kwargs = {"customer": "cus_1", "slug": "acme", "meter": meter, "day_index": 0, "day": day}
    first = list(day_events(rng=random.Random(1), **kwargs))
    assert first == list(day_events(rng=random.Random(1), **kwargs))
    assert 150 < len(first) < 330  # gauss(240, 8%): far inside ±37%
    hours = {datetime.fromtimestamp(e["timestamp"], tz=UTC).hour for e in first}
    assert len(hours) > 12
    assert len({e["identifier"] for e in first}) == len(first)
    assert {spec.slug for spec in ACCOUNTS} >= {"acme", "delta", "foxtrot"}
